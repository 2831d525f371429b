"""dcmtools.web without a server: the streamed multipart body, the QIDO-RS query, the peer and its secrets."""

from __future__ import annotations

import email.parser
import email.policy
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dcmtools.stream.records import DcmtoolsError


def test_multipart_body_streams_the_files_as_they_are():
    from dcmtools.web.stow import MultipartBody, prepare

    parts = [prepare(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")]
    body = MultipartBody(parts, "XyZ")
    chunks = []
    while True:
        chunk = body.read(7000)  # odd block size: parts and boundaries cut anywhere
        if not chunk:
            break
        assert len(chunk) <= 7000
        chunks.append(chunk)
    data = b"".join(chunks)
    assert len(data) == len(body)
    import requests

    request = requests.Request("POST", "http://127.0.0.1:9/", data=MultipartBody(parts, "XyZ")).prepare()
    assert request.headers["Content-Length"] == str(len(body))  # not chunked: some servers refuse that
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b'Content-Type: multipart/related; type="application/dicom"; boundary=XyZ\r\n\r\n' + data
    )
    payloads = [part.get_payload(decode=True) for part in message.iter_parts()]
    assert payloads == [Path(p.path).read_bytes() for p in parts]
    assert all(part.get_content_type() == "application/dicom" for part in message.iter_parts())


def test_a_bare_dataset_is_given_a_file_meta_header():
    import io

    import pydicom

    from dcmtools.web.stow import prepare

    path = get_testdata_file("ExplVR_LitEndNoMeta.dcm")
    part = prepare(path)
    assert part.data is not None and part.data[128:132] == b"DICM" and part.size == len(part.data)
    sent = pydicom.dcmread(io.BytesIO(part.data))
    original = pydicom.dcmread(path, force=True)
    assert sent.file_meta.TransferSyntaxUID == part.transfer_syntax == "1.2.840.10008.1.2.1"
    assert sent.SOPInstanceUID == original.SOPInstanceUID
    assert all(sent[e.tag].value == e.value for e in original)


def test_qido_parameters_from_find_keys():
    from dcmtools.net import keys as K
    from dcmtools.web.qido import encode_query, query_parameters

    identifier = K.identifier_from(
        K.parse_keys(
            [
                "PatientName=DOE^J*",
                "StudyDate=20240101-20240131",
                "ModalitiesInStudy=CT\\MR",
                "StudyInstanceUID",
                "PatientID=*",
            ]
        ),
        (),
        "STUDY",
    )
    params = dict(query_parameters(identifier))
    assert params["00100010"] == "DOE^J*" and params["00080020"] == "20240101-20240131"
    assert params["00080061"] == "CT,MR"
    query = encode_query(query_parameters(identifier))
    assert "00100010=DOE^J*" in query  # Orthanc does not decode %2A
    assert "includefield=0020000D" in query and "includefield=00100020" in query  # '*' alone: return key
    assert "00080052" not in query  # QueryRetrieveLevel is the resource, not a key


def test_peer_url_and_secrets(tmp_path, monkeypatch):
    from dcmtools.web import is_web_peer, parse_web_peer

    monkeypatch.delenv("DCMTOOLS_TOKEN", raising=False)
    monkeypatch.delenv("DCMTOOLS_PASSWORD", raising=False)
    monkeypatch.delenv("DCMTOOLS_USER", raising=False)
    assert parse_web_peer("https://pacs.example.org/dicom-web/").url == "https://pacs.example.org/dicom-web"
    token = tmp_path / "token"
    token.write_text("abc123\n")
    assert parse_web_peer("https://h/dw", token_file=str(token)).token == "abc123"
    monkeypatch.setenv("DCMTOOLS_TOKEN", "from-env")
    assert parse_web_peer("https://h/dw").token == "from-env"
    monkeypatch.delenv("DCMTOOLS_TOKEN")
    with pytest.raises(DcmtoolsError) as info:
        parse_web_peer("https://h/dw", user="alice")  # no password anywhere
    assert info.value.exit_status == 2 and "DCMTOOLS_PASSWORD" in str(info.value.hint)
    with pytest.raises(DcmtoolsError):
        parse_web_peer("https://h/dw?x=1")
    peers = tmp_path / "peers.toml"
    (tmp_path / "pw").write_text("secret")
    peers.write_text(
        '[cloud]\nurl = "https://h/dw"\nuser = "bob"\npassword_file = "pw"\nbatch = 7\n'
        '[pacs]\naet = "PACS"\nhost = "127.0.0.1"\nport = 104\n'
    )
    assert is_web_peer("cloud", peers) and not is_web_peer("pacs", peers) and is_web_peer("http://x/y")
    peer = parse_web_peer("cloud", peers)
    assert (peer.url, peer.user, peer.password, peer.batch, peer.label) == (
        "https://h/dw",
        "bob",
        "secret",
        7,
        "cloud (https://h/dw)",
    )
    assert "secret" not in repr(peer)

    from dcmtools.net import parse_peer

    assert parse_peer("pacs", peers).aet == "PACS"  # the DIMSE side skips the url entry


def test_batches_are_bounded_by_count_and_size(tmp_path):
    from dcmtools.web.stow import _batches

    ct, mr = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")  # 39 kB, 10 kB
    files = [ct, mr, mr, mr, mr, ct, mr]
    by_count = [[Path(p.path).name for p in parts] for parts, _ in _batches(files, 3, 10**9)]
    assert [len(b) for b in by_count] == [3, 3, 1]
    sizes = [[p.size for p in parts] for parts, _ in _batches(files, 100, 45_000)]
    assert all(sum(s) <= 45_000 or len(s) == 1 for s in sizes) and sum(len(s) for s in sizes) == len(files)
    assert [len(s) for s in sizes] == [1, 4, 1, 1]  # ct (39 kB) + mr (10 kB) pass 45 kB: a new request
    missing = tmp_path / "missing.dcm"
    errors = [e for _, errs in _batches([str(missing), mr], 10, 10**9) for e in errs]
    assert len(errors) == 1 and errors[0]["ok"] is False and errors[0]["path"] == str(missing)
