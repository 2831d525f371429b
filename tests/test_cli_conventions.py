"""The spellings and defaults every command shares (docs/design/cli-conventions.md), and the option groups
(cli/groups.py) that declare the shared options once."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import typer
from peers import dcmtools

from dcmtools.cli.common import FileArgs, StdArgs
from dcmtools.cli.groups import OptionGroup, option_groups


def _commands() -> dict[str, object]:
    """Every command and sub-command, by its name ("journal merge"), as click sees it."""
    from dcmtools.cli import load_commands

    found: dict[str, object] = {}

    def walk(command, name: str) -> None:
        if hasattr(command, "commands"):
            for sub, child in command.commands.items():
                walk(child, f"{name} {sub}".strip())
        else:
            found[name] = command

    walk(typer.main.get_command(load_commands([])), "")
    return found


def _options(command) -> list:
    return [p for p in command.params if p.param_type_name == "option"]


def test_a_short_option_means_one_long_option_in_every_command():
    meaning: dict[str, dict[str, set[str]]] = {}
    for name, command in _commands().items():
        for option in _options(command):
            if option.hidden:
                continue  # an old spelling kept for scripts
            longs = [o for o in option.opts + option.secondary_opts if o.startswith("--")]
            for short in (o for o in option.opts if not o.startswith("--")):
                meaning.setdefault(short, {}).setdefault(longs[0], set()).add(name)
    clashes = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert not clashes, clashes
    # the spellings DESIGN.md fixes, and the ones the conventions add
    expected = {"-o": "--output", "-j": "--jobs", "-0": "--null", "-q": "--quiet", "-t": "--tag", "-k": "--key"}
    for short, long in expected.items():
        assert set(meaning[short]) == {long}, short
    assert set(meaning["-t"]["--tag"]) == {"dump"}  # no longer transcode's --to


def test_jobs_defaults_to_one_process_everywhere():
    defaults = {
        name: option.default
        for name, command in _commands().items()
        for option in _options(command)
        if "--jobs" in option.opts
    }
    assert {"dump", "anonymize", "edit", "render", "transcode", "send"} <= set(defaults)
    assert set(defaults.values()) == {1}, defaults


def test_an_output_a_command_cannot_run_without_says_so_in_its_help():
    commands = _commands()
    output = {name: o for name in commands for o in _options(commands[name]) if "--output" in o.opts}
    assert output["anonymize"].required and output["journal merge"].required
    assert "[required]" in dcmtools("anonymize", "--help").stdout
    for name, unless in (("transcode", "--list"), ("render", "--sheet"), ("edit", "--in-place or --dry-run")):
        assert not output[name].required and output[name].help.endswith(f"[required unless {unless}]"), name
    missing = dcmtools("anonymize", "-")
    assert missing.returncode == 2 and "Missing option '--output' / '-o'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_old_short_spellings_still_work_hidden(tmp_path, test_files_dir):
    transcode = _commands()["transcode"]
    assert [o.opts for o in _options(transcode) if o.hidden] == [["-t"]]
    ct = str(test_files_dir / "CT_small.dcm")
    result = dcmtools("transcode", "-t", "explicit", "-o", str(tmp_path / "out"), "--json", ct)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr
    assert records[0]["ok"] and records[0]["to"] == "explicit"
    assert "-t" not in dcmtools("transcode", "--help").stdout.split("--to")[0]
    # listen's -w (now --window's letter elsewhere) still names the worklist folder
    for spelling in ("-w", "--worklist-dir"):
        listen = dcmtools(
            "listen", spelling, str(tmp_path / "none"), "-p", "0", "--bind", "127.0.0.1", "--idle-timeout", "0.1"
        )
        assert listen.returncode == 2 and "the worklist folder" in listen.stderr, (spelling, listen.stderr)


def test_the_common_options_close_every_help_in_one_order():
    """--json/--no-json, --quiet, --debug: last of the options, in that order (StdArgs)."""
    for name, command in _commands().items():
        names = [o.name for o in _options(command) if not o.hidden and o.name != "help"]
        assert names[-3:] == ["json", "quiet", "debug"], name


# ---------------------------------------------------------------- the groups themselves
NameOpt = Annotated[str | None, typer.Option("--name", metavar="NAME", help="A name.")]
CountOpt = Annotated[int, typer.Option("--count", metavar="N", help="A count.")]


@dataclass(frozen=True)
class _Pair(OptionGroup):
    name: NameOpt = None
    count: CountOpt = 3


def test_option_groups_expand_each_group_in_place_and_hand_the_command_one_object():
    seen = {}

    @option_groups
    def command(first: str, pair: _Pair = _Pair(), last: bool = False, std: StdArgs = StdArgs()) -> None:
        seen.update(first=first, pair=pair, last=last, std=std)

    parameters = inspect.signature(command).parameters
    assert list(parameters) == ["first", "name", "count", "last", "json", "quiet", "debug"]
    assert parameters["count"].default == 3 and parameters["name"].annotation is NameOpt
    command("x", name="n", count=4, last=True, json=True, quiet=False, debug=True)
    assert seen == {"first": "x", "pair": _Pair("n", 4), "last": True, "std": StdArgs(json=True, debug=True)}


def test_a_group_can_be_taken_in_part():
    seen = {}

    @option_groups
    def command(pair: _Pair.only("count") = _Pair(), other: _Pair.without("count") = _Pair()) -> None:  # type: ignore[valid-type]
        seen.update(pair=pair, other=other)

    assert list(inspect.signature(command).parameters) == ["count", "name"]
    command(count=7, name="n")
    assert seen["pair"].count == 7 and seen["pair"].name is None
    assert seen["other"].name == "n" and seen["other"].count == 3
    assert FileArgs.without("shard", "journal", "cluster").option_types().keys() == {
        "overwrite",
        "jobs",
        "inputs",
        "files_from",
        "null",
    }


def test_a_command_without_groups_is_left_as_it_is():
    def command(a: int = 1) -> None:
        pass

    assert option_groups(command) is command


@pytest.mark.parametrize("args", [FileArgs(inputs=["a.dcm"]), FileArgs(files_from="list.txt", null=True)])
def test_file_args_is_what_commandrun_inputs_reads(args, tmp_path, monkeypatch):
    from dcmtools.cli.common import CommandRun

    monkeypatch.chdir(tmp_path)
    Path("a.dcm").write_bytes(b"")
    Path("list.txt").write_bytes(b"a.dcm\0")
    run = CommandRun("dump", json_mode=True)
    assert [item.path for item in run.inputs(args)] == ["a.dcm"]
