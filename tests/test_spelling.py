"""The library names options by keyword (`store_dir`); the command line prints its own spelling (--store-dir)."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from peers import REPO, dcmtools

from dcmtools.cli.spelling import spell_fields
from dcmtools.migrate.pacing import Window
from dcmtools.stream.outputs import exists_error
from dcmtools.stream.records import DcmtoolsError, error_record

LIBRARY = REPO / "src" / "dcmtools"
# A whole command line to run, quoted in a message: not an option of the command that prints it.
COMMAND_LINES = ("'dcmtools echo --help'", "'dcmtools transcode --list'")


def _message_strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module that are not docstrings: (line, text)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    out = []
    for n, token in enumerate(tokens):
        if token.type != tokenize.STRING:
            continue
        before = tokens[n - 1].type if n else tokenize.NEWLINE
        after = tokens[n + 1].type if n + 1 < len(tokens) else tokenize.NEWLINE
        starts = (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.NL, tokenize.ENCODING)
        if before in starts and after in (tokenize.NEWLINE, tokenize.ENDMARKER):
            continue  # a docstring: it may describe the command line
        out.append((token.start[0], token.string))
    return out


def test_no_library_message_spells_a_command_line_option():
    """ARCHITECTURE.md rule 3: outside cli/, a message names an option as `keyword`, never as --option."""
    import re

    flag = re.compile(r"(?<![\w`\-'])--[a-z]")
    found = []
    for path in sorted(LIBRARY.rglob("*.py")):
        if "cli" in path.relative_to(LIBRARY).parts:
            continue
        for line, text in _message_strings(path):
            if any(command in text for command in COMMAND_LINES):
                continue
            if flag.search(text):
                found.append(f"{path.relative_to(REPO)}:{line}: {text[:80]}")
    assert not found, "\n".join(found)


def test_spell_fields_spells_the_word_fields_and_leaves_datasets_alone():
    error = exists_error("out/a.dcm")
    assert "`overwrite`" in (error.hint or "")  # the library's form
    record = error_record("file", error, path="a.dcm")
    record["dataset"] = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "`overwrite`"}]}}
    spelled = spell_fields(record)
    assert spelled["error"]["hint"] == "use --overwrite to replace it"
    assert spelled["dataset"] is record["dataset"]  # a dataset is not walked, nor copied
    assert record["error"]["hint"] == "use `overwrite` to replace it"  # the library's record is not changed
    plain = {"type": "file", "path": "a.dcm", "ok": True}
    assert spell_fields(plain) is plain
    assert spell_fields({"type": "listening", "access": "see `allow_any`"})["access"] == "see --allow-any"


def test_library_error_reads_right_from_python():
    try:
        Window.parse("bad")
    except DcmtoolsError as exc:
        assert exc.message.startswith("`window` 'bad'")
    else:
        raise AssertionError("Window.parse('bad') should fail")


def test_usage_error_of_the_library_is_spelled_on_the_command_line():
    """A library usage error raised inside a command (typer.BadParameter) shows the command's spelling."""
    result = dcmtools("find", "PACS@127.0.0.1:1", "--date", "garbage")
    assert result.returncode == 2
    assert "--date 'garbage'" in result.stderr and "`date`" not in result.stderr, result.stderr


def test_fatal_error_record_and_stderr_are_spelled(tmp_path):
    """A library usage error raised while the command runs (a TLS file that does not exist), on stderr."""
    result = dcmtools("echo", "PACS@127.0.0.1:1", "--tls", "--tls-ca", str(tmp_path / "none.pem"), "--json")
    assert result.returncode == 2
    assert "--tls-ca '" in result.stderr and "`" not in result.stderr, result.stderr
    assert "`" not in result.stdout
