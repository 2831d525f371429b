"""cli.netopts: the client options declared once (client_options / NetArgs) and the one fatal-error path."""

from __future__ import annotations

import inspect

import pytest

from dcmtools.cli.netopts import NetArgs, client_options, fatal_as_record
from dcmtools.stream.records import DcmtoolsError, ExitStatus

CLIENT_OPTIONS = [
    "aet",
    "timeout",
    "max_pdu",
    "peers",
    "tls",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_insecure",
    "tls_server_name",
    "trace",
]


def test_client_options_put_the_options_where_net_was_and_hand_one_netargs():
    seen = {}

    @client_options
    def command(peer: str, count: int = 1, net: NetArgs = NetArgs(), json: bool = False) -> None:
        seen.update(peer=peer, count=count, net=net, json=json)

    names = list(inspect.signature(command).parameters)
    assert names == ["peer", "count", *CLIENT_OPTIONS, "json"]
    assert "net" not in command.__annotations__ and set(CLIENT_OPTIONS) <= set(command.__annotations__)
    values = dict.fromkeys(CLIENT_OPTIONS)
    values.update(aet="ME", timeout=5.0, tls=True, trace=False, tls_insecure=False)
    command("PACS@h:1", count=2, json=True, **values)
    assert seen["peer"] == "PACS@h:1" and seen["count"] == 2 and seen["json"] is True
    assert seen["net"] == NetArgs(aet="ME", timeout=5.0, tls=True)


def test_client_options_needs_a_net_parameter():
    with pytest.raises(TypeError, match="net: NetArgs"):
        client_options(lambda peer: None)


def test_every_client_command_has_the_same_options():
    from dcmtools.cli import commit, echo, find, move, print_, send, worklist

    for module, name in (
        (echo, "echo_command"),
        (send, "send_command"),
        (find, "find_command"),
        (move, "move_command"),
        (worklist, "worklist_command"),
        (commit, "commit_command"),
        (print_, "print_command"),
    ):
        params = list(inspect.signature(getattr(module, name)).parameters)
        start = params.index("aet")
        assert params[start : start + len(CLIENT_OPTIONS)] == CLIENT_OPTIONS, name


class _Writer:
    def __init__(self) -> None:
        self.status = 0

    def fail(self, status: int) -> None:
        self.status = status


class _Run:
    command = "echo"
    json_mode = False

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.writer = _Writer()

    def write(self, record: dict) -> None:
        self.records.append(record)


def test_fatal_as_record_writes_the_record_and_the_status_and_lets_usage_errors_through():
    run = _Run()
    with fatal_as_record(run, lambda exc: "printer" if exc.code == "timeout" else "association", peer="P@h:1"):
        raise DcmtoolsError("timeout", "no answer", "raise the timeout", ExitStatus.TIMEOUT)
    assert run.writer.status == ExitStatus.TIMEOUT
    assert run.records[0]["type"] == "printer" and run.records[0]["error"]["code"] == "timeout"
    assert run.records[0]["ok"] is False
    with pytest.raises(DcmtoolsError):
        with fatal_as_record(run, "echo"):
            raise DcmtoolsError("bad_peer", "unknown peer", None, ExitStatus.USAGE)
