"""The pynetdicom internals that dcmtools.net.seam relies on exist and behave as assumed.

An upgrade of pynetdicom that renames or changes one of them fails here first,
with the name in the message, before any network test times out mysteriously.
No peer: these build pynetdicom objects in-process and look at them.
"""

from __future__ import annotations

import inspect
import queue
import re
import threading
from pathlib import Path

import pytest

pytest.importorskip("pynetdicom")

from pynetdicom import AE, acse, dimse, dul, pdu, pdu_primitives, transport  # noqa: E402
from pynetdicom._globals import ALL_TRANSFER_SYNTAXES, MODE_ACCEPTOR  # noqa: E402
from pynetdicom.association import Association  # noqa: E402
from pynetdicom.presentation import build_context  # noqa: E402

from dcmtools.net import seam  # noqa: E402

SRC = Path(__file__).resolve().parent.parent / "src" / "dcmtools"


def _params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_pinned_range_is_the_installed_one() -> None:
    import pynetdicom

    major, minor = (int(part) for part in pynetdicom.__version__.split(".")[:2])
    assert (major, minor) == (3, 0), f"seam tested with pynetdicom 3.0.x, found {pynetdicom.__version__}"
    pyproject = (SRC.parent.parent / "pyproject.toml").read_text()
    assert re.search(r'"pynetdicom>=3\.0\.\d+,<3\.1"', pyproject), "pyproject.toml must pin pynetdicom to 3.0.x"


def test_module_level_names() -> None:
    assert MODE_ACCEPTOR == "acceptor"
    assert "1.2.840.10008.1.2" in ALL_TRANSFER_SYNTAXES and "1.2.840.10008.1.2.1" in ALL_TRANSFER_SYNTAXES
    assert _params(acse.negotiate_as_acceptor) == ["rq_contexts", "ac_contexts", "roles"]
    for cls in (
        pdu.A_ABORT_RQ,
        pdu.A_ASSOCIATE_RJ,
        pdu_primitives.P_DATA,
        transport.AssociationSocket,
        transport.RequestHandler,
        transport.AddressInformation,
        dul.DULServiceProvider,
        dimse.DIMSEServiceProvider,
        acse.ACSE,
    ):
        assert inspect.isclass(cls), cls
    from pynetdicom.dsutils import encode

    assert _params(encode)[:4] == ["ds", "is_implicit_vr", "is_little_endian", "deflated"]


def test_overridden_hooks_exist_with_their_signatures() -> None:
    assert _params(AE._create_socket) == ["self", "assoc", "address", "tls_args"]
    assert _params(acse.ACSE._negotiate_as_acceptor) == ["self"]
    assert _params(transport.RequestHandler._create_association) == ["self"]
    assert _params(dul.DULServiceProvider._read_pdu_data) == ["self"]
    assert _params(dul.DULServiceProvider._decode_pdu) == ["self", "bytestream"]
    for name in ("_process_recv_primitive", "_is_transport_event", "run_reactor"):
        assert _params(getattr(dul.DULServiceProvider, name)) == ["self"], name
    assert _params(transport.AssociationSocket._shutdown_socket) == ["self"]
    assert _params(dimse.DIMSEServiceProvider.send_msg) == ["self", "primitive", "context_id"]
    assert _params(dimse.DIMSEServiceProvider.receive_primitive) == ["self", "primitive"]
    assert _params(dimse.DIMSEServiceProvider.get_msg) == ["self", "block"]
    # the ACSE looks the negotiation up in its module at call time (what the swap relies on)
    assert "negotiate_as_acceptor(" in inspect.getsource(acse.ACSE._negotiate_as_acceptor)
    assert "_serve_request(" in inspect.getsource(Association)


def test_association_attributes() -> None:
    ae = AE()
    assoc = Association(ae, MODE_ACCEPTOR)
    assert isinstance(assoc._reactor_checkpoint, threading.Event) and assoc._reactor_checkpoint.is_set()
    assert assoc._is_paused is False
    assert isinstance(assoc._dul_ready, threading.Event)
    assert assoc._kill is False
    assert isinstance(assoc._accepted_cx, dict)
    assert callable(assoc._serve_request) and _params(assoc._serve_request) == ["msg", "context_id"]
    assert isinstance(assoc.dimse.msg_queue, queue.Queue)
    assert assoc.dimse.cancel_req == {}
    assert assoc.dul.state_machine.current_state == "Sta1"
    for name in ("event_queue", "to_provider_queue", "to_user_queue", "artim_timer"):
        assert hasattr(assoc.dul, name), name
    assert hasattr(assoc.dul, "_kill_thread") and isinstance(assoc.dul._recv_pdu, queue.Queue)
    timer = assoc.dul._idle_timer
    assert callable(timer.start) and callable(timer.restart)


def test_seam_helpers_behave() -> None:
    ae = AE()
    assoc = Association(ae, MODE_ACCEPTOR)
    seam.pause_reactor(assoc)
    assert not assoc._reactor_checkpoint.is_set()
    seam.resume_reactor(assoc)
    assert assoc._reactor_checkpoint.is_set()
    assert seam.wait_reactor_paused(assoc, 0.01) is False  # not established: returns at once
    cx = build_context("1.2.840.10008.1.1", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
    cx.context_id = 1
    assoc._accepted_cx[1] = cx
    assert seam.accepted_context(assoc, 1) is cx and seam.accepted_context(assoc, 3) is None
    seam.set_transfer_syntaxes(cx, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    assert [str(ts) for ts in cx.transfer_syntax] == ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
    seen = []
    seam.intercept_requests(assoc, lambda original, msg, context_id: seen.append((original, msg, context_id)))
    assoc._serve_request("msg", 1)
    assert seen and seen[0][1:] == ("msg", 1) and callable(seen[0][0])
    assoc.dimse.cancel_req[7] = object()
    assert seam.cancel_requested(assoc, 7)
    seam.forget_cancels(assoc)
    assert not seam.cancel_requested(assoc, 7)
    assert seam.dimse_queue(assoc) is assoc.dimse.msg_queue
    assert seam.dul_ended(assoc)  # Sta1, thread not started
    seam.kill_association(assoc)
    assert assoc._kill is True
    seam.mark_dul_ready(assoc)
    assert assoc._dul_ready.is_set()
    seam.attach_server(assoc, "server")
    assert seam.server_of(assoc) == "server"


def test_pass_pdv_reaches_the_dimse_decoder() -> None:
    """A PDV handed on decodes into a DIMSE message on the queue (a C-ECHO-RQ command set)."""
    from dcmtools.net import wire

    assoc = Association(AE(), MODE_ACCEPTOR)
    cx = build_context("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])
    cx.context_id = 1
    assoc._accepted_cx[1] = cx
    command = wire.encode_command(
        [
            (wire.TAG_AFFECTED_SOP_CLASS, "1.2.840.10008.1.1"),
            (wire.TAG_COMMAND_FIELD, wire.C_ECHO_RQ),
            (wire.TAG_MESSAGE_ID, 5),
            (wire.TAG_DATASET_TYPE, wire.NO_DATASET),
        ]
    )
    seam.pass_pdv(assoc, 1, 0x03, command)
    context_id, message = seam.dimse_queue(assoc).get(timeout=1)
    assert context_id == 1 and type(message).__name__ == "C_ECHO" and int(message.MessageID) == 5


def test_negotiation_swap_is_restored() -> None:
    original = acse.negotiate_as_acceptor
    with seam.swapped_acceptor_negotiation(lambda rq, ac, roles: ([], [])):
        assert acse.negotiate_as_acceptor is not original
    assert acse.negotiate_as_acceptor is original
    rq = build_context("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])
    rq.context_id = 1
    ac = build_context("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])
    result, roles = seam.acceptor_negotiation([rq], [ac], [])
    assert [cx.result for cx in result] == [0x00] and roles == []


def test_dul_base_names() -> None:
    assoc = Association(AE(), MODE_ACCEPTOR)
    provider = seam.DULBase(assoc)
    assert provider.thread_stopping is False
    provider.stop_thread()
    assert provider.thread_stopping is True and provider._kill_thread is True
    abort = pdu.A_ABORT_RQ()
    abort.source, abort.reason_diagnostic = 2, 0
    decoded, event = provider.decode_pdu(abort.encode())
    assert isinstance(decoded, pdu.A_ABORT_RQ) and event == "Evt16"
    provider.queue_received_pdu(decoded)
    assert provider._recv_pdu.get_nowait() is decoded
    assert provider.process_received_primitive() is False  # nothing queued by the user


def test_no_pynetdicom_private_outside_the_seam() -> None:
    """Only net/seam.py imports pynetdicom's internal modules or names."""
    internal = re.compile(
        r"pynetdicom\._|from pynetdicom\.(dul|dimse|pdu|pdu_primitives|pdu_items|acse|dsutils|fsm|"
        r"timer|utils) import|from pynetdicom import .*\b(dul|dimse|acse|pdu)\b|"
        r"\._(reactor_checkpoint|is_paused|accepted_cx|serve_request|dul_ready|kill_thread|"
        r"idle_timer|recv_pdu|decode_pdu|process_recv_primitive|is_transport_event|"
        r"transfer_syntax|handlers|is_connected|shutdown_socket|create_socket|"
        r"create_association|negotiate_as_acceptor|read_pdu_data)\b|\.dimse\.|"
        r"\.cancel_req\b"
    )
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "seam.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if internal.search(line.split("#")[0]) and "AddressInformation" not in line:
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []
