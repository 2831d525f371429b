"""The network core's pure parts: peers, peers files, words for statuses and rejections, wire bytes."""

import struct

import pytest

from dcmtools.cli.spelling import spell
from dcmtools.net import wire
from dcmtools.net.assoc import abort_reason, reject_reason
from dcmtools.net.peer import Peer, load_peers, parse_peer
from dcmtools.net.status import describe, status_fields
from dcmtools.stream.records import DcmtoolsError, ExitStatus


def test_parse_peer_forms():
    assert parse_peer("STORESCP@127.0.0.1:11112") == Peer("STORESCP", "127.0.0.1", 11112)
    assert parse_peer("PACS@pacs.example.org:104").host == "pacs.example.org"
    v6 = parse_peer("X@[::1]:4242")
    assert (v6.host, v6.port, str(v6)) == ("::1", 4242, "X@[::1]:4242")


@pytest.mark.parametrize(
    "text, words",
    [
        ("TOOLONGAETITLE_X_Y@h:104", "not valid"),
        ("A@h:70000", "out of range"),
        ("nosuchname", "unknown peer 'nosuchname'"),
        ("A@h", "unknown peer"),
    ],
)
def test_bad_peers_are_usage_errors(text, words, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("DCMTOOLS_PEERS", raising=False)
    with pytest.raises(DcmtoolsError) as info:
        parse_peer(text)
    assert words in info.value.message
    assert info.value.exit_status == ExitStatus.USAGE


def test_peers_file_by_option_env_and_default(tmp_path, monkeypatch):
    (tmp_path / "ca.pem").write_text("x")
    text = (
        '[pacs]\naet = "PACS"\nhost = "10.1.2.3"\nport = 104\ntls_ca = "ca.pem"\ntimeout = 5\n'
        '[orthanc]\naet = "ORTHANC"\nhost = "localhost"\nport = 4242\nmax_pdu = 16384\n'
    )
    path = tmp_path / "p.toml"
    path.write_text(text)
    peer = parse_peer("pacs", path)
    assert (peer.aet, peer.host, peer.port, peer.timeout, peer.name) == ("PACS", "10.1.2.3", 104, 5.0, "pacs")
    assert peer.tls.ca == str(tmp_path / "ca.pem")  # relative to the file
    monkeypatch.setenv("DCMTOOLS_PEERS", str(path))
    assert parse_peer("orthanc").max_pdu == 16384
    monkeypatch.delenv("DCMTOOLS_PEERS")
    config = tmp_path / "cfg" / "dcmtools"
    config.mkdir(parents=True)
    (config / "peers.toml").write_text(text)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    peers, source = load_peers()
    assert sorted(peers) == ["orthanc", "pacs"] and source == config / "peers.toml"
    with pytest.raises(DcmtoolsError) as info:
        parse_peer("other")
    assert "knows: orthanc, pacs" in info.value.hint


def test_bad_peers_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[pacs]\naet = "PACS"\nhost = "h"\n')
    with pytest.raises(DcmtoolsError) as info:
        parse_peer("pacs", path)
    assert "missing 'port'" in info.value.message
    path.write_text("not toml [")
    with pytest.raises(DcmtoolsError):
        parse_peer("pacs", path)


def test_status_words():
    assert describe(0x0000, "storage") == ("success", "Success")
    assert describe(0xA712, "storage")[0] == "failure"
    assert "Out of Resources" in describe(0xA712, "storage")[1]
    assert describe(0xB000, "storage")[0] == "warning"
    assert status_fields(0xC123, "storage") == {"status": "0xC123", "status_meaning": "Cannot Understand"}


def test_rejection_and_abort_words():
    words, hint = reject_reason(1, 1, 7, "ME", "PACS")
    assert words == "the called AE title 'PACS' is not recognised (rejected permanently)"
    assert "PACS@host:port" in hint
    words, hint = reject_reason(1, 1, 3, "ME", "PACS")
    assert "'ME' is not recognised" in words and "`aet`" in hint  # the library names the option by keyword
    assert "--aet" in spell(hint)  # and the command line spells it
    assert "temporarily congested" in reject_reason(2, 3, 1)[0]
    assert abort_reason(2, 2) == "aborted by the peer's DICOM UL service provider: unexpected PDU"


def test_command_round_trip():
    data = wire.store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", priority=2, move_originator=("MOVER", 9))
    assert len(data) % 2 == 0
    group_length = struct.unpack_from("<L", data, 8)[0]
    assert group_length == len(data) - 12
    parsed = wire.parse_command(data)
    assert wire.command_us(parsed, wire.TAG_COMMAND_FIELD) == wire.C_STORE_RQ
    assert wire.command_us(parsed, wire.TAG_MESSAGE_ID) == 7
    assert wire.command_us(parsed, wire.TAG_PRIORITY) == 2
    assert wire.command_str(parsed, wire.TAG_AFFECTED_SOP_INSTANCE) == "1.2.3.4.5"
    assert wire.command_str(parsed, wire.TAG_MOVE_ORIGINATOR_AET) == "MOVER"


def test_command_decodes_with_pydicom():
    """The hand-made command set is what pydicom reads as Implicit VR LE."""
    from io import BytesIO

    from pynetdicom.dsutils import decode

    ds = decode(BytesIO(wire.store_rsp(3, "1.2.840.10008.5.1.4.1.1.7", "1.2.3", 0xA700, "disk full")), True, True)
    assert (ds.CommandField, ds.MessageIDBeingRespondedTo, ds.Status) == (0x8001, 3, 0xA700)
    assert ds.ErrorComment == "disk full" and ds.CommandDataSetType == 0x0101
    assert ds.AffectedSOPInstanceUID == "1.2.3"


def test_pdata_fragments_fit_the_peer_max_pdu():
    data = bytes(range(256)) * 100  # 25,600 bytes
    buffers: list = []
    count = wire.pdata_iovecs(5, data, False, True, wire.max_fragment(4096), buffers)
    stream = b"".join(bytes(b) for b in buffers)
    pos, out, controls = 0, bytearray(), []
    while pos < len(stream):
        pdu_type, _, length = struct.unpack_from(">BBL", stream, pos)
        assert pdu_type == 4 and length <= 4096
        for context_id, control, fragment in wire.iter_pdvs(stream[pos + 6 : pos + 6 + length]):
            assert context_id == 5
            controls.append(control)
            out += fragment
        pos += 6 + length
    assert bytes(out) == data and count == len(controls) == 7
    assert controls[-1] == 2 and set(controls[:-1]) == {0}


def test_file_meta_bytes_read_back(tmp_path):
    import pydicom

    path = tmp_path / "x.dcm"
    path.write_bytes(
        wire.file_meta_bytes(
            "1.2.840.10008.5.1.4.1.1.7", "1.2.3", wire.EXPLICIT_LE, "1.2.826.0.1", "DCMTOOLS", "MODALITY"
        )
    )
    meta = pydicom.filereader.read_file_meta_info(path)
    assert meta.MediaStorageSOPInstanceUID == "1.2.3"
    assert meta.TransferSyntaxUID == wire.EXPLICIT_LE
    assert meta.SourceApplicationEntityTitle == "MODALITY"


def test_a_reject_read_by_our_dul_is_a_rejection_even_when_pynetdicom_missed_it():
    """A peer that rejects and closes at once can close before pynetdicom's requestor thread looks at the
    socket; pynetdicom then aborts with the A-ASSOCIATE-RJ unread (seen under load against Orthanc: exit 5,
    "closed the connection without answering").  Our DUL recorded the PDU as it read it: that decides."""
    from types import SimpleNamespace

    from dcmtools.net.assoc import diagnose
    from dcmtools.stream.records import ErrorCode

    dul = SimpleNamespace(socket=SimpleNamespace(), last_reject=(1, 1, 7), last_abort=None)
    missed = SimpleNamespace(
        dul=dul,
        requestor=SimpleNamespace(ae_title="DCMTOOLS"),
        is_rejected=False,  # what pynetdicom says after its own abort
        rejected_contexts=[],
        accepted_contexts=[],
    )
    error = diagnose(missed, Peer("WRONGAE", "127.0.0.1", 4242), timeout=30, elapsed=0.01)
    assert error.code == ErrorCode.REJECTED and error.exit_status == ExitStatus.REJECTED
    assert "called AE title 'WRONGAE' is not recognised" in str(error)
