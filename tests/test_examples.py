"""Every example runs as written: each command's --help examples, every ```sh block of README.md and
docs/**/*.md, with bash, in a sandbox (the shared conventions of issue 21; for readers in
docs/guides/scripting.md, "Trying the examples"):

  ct.dcm        one CT slice of samples/human-ct
  us.dcm        an ultrasound cine loop: 30 colour frames, JPEG (pydicom's examples_ybr_color.dcm)
  study/        a copy of samples/human-ct (one CT study)
  archive/      a copy of the whole samples/ tree
  worklist/     the worklist items `pacs` serves (two, scheduled today)
  peers.toml    the peers file ($DCMTOOLS_PEERS) naming
                  pacs     a real `dcmtools listen` (AE title PACS) holding the archive and answering echo,
                           store, find, move, get, worklist and storage commitment to us
                  web      Orthanc with its DICOMweb plugin (a DICOMweb base URL), holding the CT study
                  printer  DCMTK dcmprscp (AE title PRINTSCP)
                  me       us (DCMTOOLS) as a C-MOVE destination, on port 11112
  team.key      a de-identification key file; $DCMTOOLS_ANON_KEY is set too
  readings.csv  a photometer's readings of a display (examples/display-readings.csv)

with the venv's dcmtools first on PATH, then /usr/bin (jq, DCMTK by absolute path).

Help examples are the lines after "Examples:" (a line ending in a backslash continues on the next): the
dcmtools commands and the shell lines that make their files (printf ... > ids.csv).

Rules (each example is one test case, id = source:line):
- An example exits 0, or with N when its text says "# exit status N" (or "# exits N"), with no traceback.
- "# prints TEXT" after a command (up to a ";"): its stdout contains TEXT. A ```text block right after a
  ```sh block is the block's output: its lines match stdout's in order ("..." matches anything within a
  line, and a line of "..." alone any number of lines).
- A Markdown block runs as one bash script (set -o pipefail) that stops at the first command whose exit
  status is not the one its text says.
- An example that pipes into jq never prints a bare "null" (jq must select the records it means: the stream
  ends with a {"type": "summary"} record).
- Ports: 4242 is pacs's (PACS@127.0.0.1:4242), 11112 ours (the `me` entry: move's storage SCP, and
  listen's examples), 11113 commit's, 104 one where nothing listens; the test replaces them by free ports
  (104 by one it holds closed), so that runs never collide.
- A page's servers started in the background (`dcmtools listen ... &`) live until its last block has run.
- `dcmtools listen` examples do not end by themselves: the test waits for the port, sends ct.dcm to it (the
  probe that it served), then stops it with SIGTERM (exit 0 expected) unless it ended by itself (--count 1).
- A help's examples share one working directory and run in order (a later one may use what an earlier one
  wrote, as when typed in order), as do the blocks of one Markdown file; selecting one case (-k) runs the
  earlier ones first, unchecked.
- No example may name an address off loopback (a real hospital's, example.org...): such a case fails unrun.
- migrate's --help examples are skipped here: tests/test_migrate_examples.py runs them against two Orthancs.
- A Markdown block whose commands are all --help examples (docs/commands/ is generated from --help) is skipped:
  it runs as that help's example.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from peers import REPO, free_port, listen, orthanc, wait_for_port

pytestmark = pytest.mark.peer

SAMPLES = REPO / "samples"
TIMEOUT = 180  # seconds, for one example or block
MIGRATE_SKIP = "migrate's --help examples run in tests/test_migrate_examples.py (against two Orthancs)"


# ------------------------------------------------------------------------------------ collecting examples
@dataclass
class Example:
    source: str  # "dump --help" or "docs/guides/worklist.md"
    id: str  # file:line
    text: str  # the shell text (a help example: one command; a Markdown block: the whole block)
    index: int  # its rank within its source
    expected_output: str | None = None  # a ```text block that follows
    skip: str | None = None
    lines: list[str] = field(default_factory=list)


def _click_commands() -> Iterator[tuple[str, object]]:
    import typer.main

    from dcmtools.cli import app

    def walk(prefix: str, command: object) -> Iterator[tuple[str, object]]:
        subcommands = getattr(command, "commands", None)
        if prefix:
            yield prefix, command
        for name in sorted(subcommands or {}):
            sub = subcommands[name]  # type: ignore[index]
            if not getattr(sub, "hidden", False):
                yield from walk(f"{prefix} {name}".strip(), sub)

    yield from walk("", typer.main.get_command(app))


def _source_line(name: str, help_text: str, first_line: str) -> str:
    """file:line of an example in the CLI's source: in the docstring (or help=) of its command, found by
    the help's first line (journal's subcommands repeat the group's examples)."""
    from dcmtools.cli import COMMANDS

    path = REPO / "src/dcmtools/cli" / f"{COMMANDS.get(name.split()[0], name)}.py"
    if path.is_file():
        lines = path.read_text().splitlines()
        head = help_text.strip().splitlines()[0][:40]
        start = next((n for n, line in enumerate(lines) if head in line), 0)
        for number, line in enumerate(lines[start:], start + 1):
            if first_line in line.replace("\\\\", "\\"):
                return f"{path.relative_to(REPO)}:{number}"
    return f"{name} --help"


def help_examples() -> list[Example]:
    examples: list[Example] = []
    seen: set[str] = set()
    for name, command in _click_commands():
        text = getattr(command, "help", None) or ""
        if "Examples:" not in text:
            continue
        lines = text.split("Examples:", 1)[1].splitlines()
        found: list[list[str]] = []
        continuing = False
        for line in lines:
            stripped = line.strip()
            if continuing:
                found[-1].append(stripped)
            elif stripped and not stripped.startswith("#"):
                # every line of the section: the dcmtools commands and the lines that make their files
                found.append([stripped])
            else:
                continue
            continuing = stripped.endswith("\\")
        for index, block in enumerate(found):
            source_id = _source_line(name, text, block[0])
            key = f"{name}:{block[0]}"
            if key in seen:
                continue
            seen.add(key)
            examples.append(
                Example(
                    source=f"{name} --help",
                    id=source_id,
                    text="\n".join(block),
                    index=index,
                    skip=MIGRATE_SKIP if name == "migrate" else None,
                    lines=block,
                )
            )
    return examples


FENCE = re.compile(r"^(\s*)```\s*([\w-]*)\s*$")


def markdown_files() -> list[Path]:
    files = [REPO / "README.md"] if (REPO / "README.md").exists() else []
    return files + sorted((REPO / "docs").rglob("*.md"))


def markdown_examples(help_lines: set[str]) -> list[Example]:
    examples: list[Example] = []
    for path in markdown_files():
        rel = str(path.relative_to(REPO))
        blocks: list[tuple[int, str, list[str]]] = []  # (first line number, language, lines)
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            language, start, body = match.group(2), i + 1, []
            i += 1
            while i < len(lines) and not FENCE.match(lines[i]):
                body.append(lines[i][len(match.group(1)) :] if lines[i].startswith(match.group(1)) else lines[i])
                i += 1
            blocks.append((start, language, body))
            i += 1
        index = 0
        for k, (start, language, body) in enumerate(blocks):
            if language != "sh":
                continue
            expected = None
            if k + 1 < len(blocks) and blocks[k + 1][1] == "text":
                between = lines[start + len(body) : blocks[k + 1][0] - 1]
                if all(not line.strip() or FENCE.match(line) for line in between):
                    expected = "\n".join(blocks[k + 1][2])
            commands = [line.strip() for line in body if line.strip() and not line.strip().startswith("#")]
            skip = None
            if commands and all(command in help_lines for command in commands):
                skip = "the same commands as --help examples, which run as those"
            examples.append(Example(rel, f"{rel}:{start}", "\n".join(body), index, expected, skip))
            index += 1
    return examples


HELP_EXAMPLES = help_examples()
MARKDOWN_EXAMPLES = markdown_examples({line for example in HELP_EXAMPLES for line in example.lines})
BY_SOURCE: dict[str, list[Example]] = {}
for _example in HELP_EXAMPLES + MARKDOWN_EXAMPLES:
    BY_SOURCE.setdefault(_example.source, []).append(_example)


# ------------------------------------------------------------------------------------ the sandbox
WORKLIST_ITEMS = {
    "ct-doe.json": ("DOE^JANE", "PAT001", "CT", "CT1", "ACC001", "CT abdomen"),
    "cr-rex.json": ("SMITH^REX", "VET042", "CR", "CR1", "ACC043", "Thorax 2 views"),
}


def _worklist_item(name, patient_id, modality, station, accession, description, date: str) -> dict:
    def el(vr: str, value: object) -> dict:
        return {"vr": vr, "Value": [value]}

    return {
        "00100010": el("PN", {"Alphabetic": name}),
        "00100020": el("LO", patient_id),
        "00080050": el("SH", accession),
        "00321060": el("LO", description),
        "00400100": {
            "vr": "SQ",
            "Value": [
                {
                    "00400001": el("AE", station),
                    "00080060": el("CS", modality),
                    "00400002": el("DA", date),
                    "00400003": el("TM", "0930"),
                    "00400007": el("LO", description),
                }
            ],
        },
    }


@dataclass
class Sandbox:
    template: Path  # copied into each source's working directory
    root: Path
    env: dict[str, str]
    ports: dict[str, int]  # "11112" -> free port, "11113" -> free port
    done: dict[str, int] = field(default_factory=dict)  # source -> examples run so far
    workdirs: dict[str, Path] = field(default_factory=dict)
    groups: dict[str, list[int]] = field(default_factory=dict)  # process groups of each source's examples

    def stop(self, source: str) -> None:
        """Stop what a source's examples left running (a listen in the background), and wait for it."""
        groups = self.groups.pop(source, [])
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while any(_group_pids(group) for group in groups) and time.monotonic() < deadline:
            time.sleep(0.1)
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def stop_all(self) -> None:
        for source in list(self.groups):
            self.stop(source)

    def workdir(self, source: str) -> Path:
        if source not in self.workdirs:
            folder = self.root / "run" / re.sub(r"[^\w.-]+", "_", source)
            shutil.copytree(self.template, folder, symlinks=True)
            self.workdirs[source] = folder
        return self.workdirs[source]


def _build_template(template: Path) -> None:
    template.mkdir(parents=True)
    shutil.copy(SAMPLES / "human-ct/1-abdomen/ct1.dcm", template / "ct.dcm")
    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("examples_ybr_color.dcm"), template / "us.dcm")  # multi-frame, colour, 8 bits
    shutil.copytree(SAMPLES / "human-ct", template / "study")
    shutil.copytree(SAMPLES, template / "archive")
    today = dt.date.today().strftime("%Y%m%d")
    (template / "worklist").mkdir()
    for file, item in WORKLIST_ITEMS.items():
        (template / "worklist" / file).write_text(json.dumps(_worklist_item(*item, date=today)))
    (template / "team.key").write_text("a secret the team shares\n")
    shutil.copy(REPO / "examples/display-readings.csv", template / "readings.csv")


def _peers_toml(entries: dict[str, dict[str, object]]) -> str:
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in entry.items()) + "\n"
        for name, entry in entries.items()
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    from print_data import printscp

    root = tmp_path_factory.mktemp("examples")
    template = root / "template"
    _build_template(template)
    me = free_port()
    # 104: a port where nothing listens, held bound (not listening) so that nobody else can take it
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    ports = {"11112": me, "11113": free_port(), "104": closed.getsockname()[1]}  # and "4242": pacs's, below
    peers_file = template / "peers.toml"
    study = sorted((SAMPLES / "human-ct").rglob("*.dcm"))
    store = root / "pacs-store"
    shutil.copytree(SAMPLES, store)  # listen indexes what is in its store at start
    with orthanc(root, dicomweb=True, files=study) as web, printscp(root) as printer:
        entries: dict[str, dict[str, object]] = {
            "web": {"url": web.url},
            "printer": {"aet": printer.aet, "host": "127.0.0.1", "port": printer.port},
            "me": {"aet": "DCMTOOLS", "host": "127.0.0.1", "port": me},
        }
        peers_file.write_text(_peers_toml(entries))
        with listen(
            root,
            "--worklist-dir",
            str(template / "worklist"),
            "--peers",
            str(peers_file),
            aet="PACS",
            store=store,
        ) as pacs:
            # listen reads the peers file at each C-MOVE: the pacs entry can come after it started.
            entries = {"pacs": {"aet": "PACS", "host": "127.0.0.1", "port": pacs.port}, **entries}
            peers_file.write_text(_peers_toml(entries))
            ports["4242"] = pacs.port
            bin_dir = Path(sys.executable).parent
            env = {
                "PATH": os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
                "HOME": str(root / "home"),
                "LANG": "C.UTF-8",
                "TCP_NODELAY": "1",
                "PYTHONPATH": str(REPO / "src"),
                "DCMTOOLS_PEERS": str(peers_file),
                "DCMTOOLS_ANON_KEY": "the sandbox's de-identification key",
                "COLUMNS": "100",
            }
            (root / "home").mkdir()
            box = Sandbox(template, root, env, ports)
            try:
                yield box
            finally:
                box.stop_all()
                closed.close()


# ------------------------------------------------------------------------------------ running one example
OFF_LOOPBACK = re.compile(
    r"\b(?!127\.)\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|https?://(?!127\.0\.0\.1|localhost)[\w.-]+|"
    r"\b[\w-]+\.(?:example\.(?:org|com|net)|hospital|local)\b"
)
EXIT_NOTE = re.compile(r"#.*\bexit(?:s| status)\s+(\d+)")
PRINTS_NOTE = re.compile(r"#\s*prints\s+([^;]+)")  # "# prints 0; exit status 1"


def _expected_status(text: str) -> int:
    match = EXIT_NOTE.search(text)
    return int(match.group(1)) if match else 0


def _with_ports(text: str, ports: dict[str, int]) -> str:
    for literal, port in ports.items():
        text = re.sub(rf"\b{literal}\b", str(port), text)
    return text


def _logical_lines(text: str) -> list[tuple[int, int]]:
    """(first, last) physical line index of each command of a block (continuations joined, heredocs kept)."""
    lines, spans, i = text.splitlines(), [], 0
    while i < len(lines):
        first = i
        while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", lines[i].split("#")[0])
        if heredoc:
            while i + 1 < len(lines) and lines[i + 1].strip() != heredoc.group(1):
                i += 1
            i += 1
        spans.append((first, i))
        i += 1
    return spans


def _block_script(text: str) -> str:
    """The block as a bash script that stops at the first command that exits otherwise than its text says
    (a "# exit status N" note on its last line), naming the line."""
    lines = text.splitlines()
    out: list[str] = []
    for first, last in _logical_lines(text):
        command = lines[first : last + 1]
        code = "\n".join(command)
        if not code.strip() or code.strip().startswith("#"):
            out.append(code)
            continue
        expected = _expected_status(command[-1])
        check = (
            f'__s=$?; [ "$__s" -eq {expected} ] || '
            f'{{ echo "example line {first + 1} exited $__s, its text says {expected}" >&2; exit 97; }}'
        )
        if len(command) == 1 and "<<" not in code:
            stripped = re.sub(r"\s+#[^'\"]*$", "", command[0])
            out.append(f"{{ {stripped}\n}}; {check}")
        else:
            out.append(f"{{ {code}\n}}; {check}")
    return "set -o pipefail\n" + "\n".join(out) + "\n"


def _listen_port(text: str) -> int:
    match = re.search(r"(?:--port|-p)[ =](\d+)", text)
    return int(match.group(1)) if match else 11112


def _group_pids(pgid: int) -> list[int]:
    """The processes of a process group we started (to stop a listen within an example's pipeline)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                pids.append(int(stat.parent.name))
    return pids


def _run_server(command: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str, str]:
    """A `dcmtools listen` example: started, probed with a C-STORE of ct.dcm, stopped by SIGTERM."""
    port = _listen_port(command)
    proc = subprocess.Popen(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    probe_note = ""
    try:
        wait_for_port(port, proc, timeout=30)
        allowed = re.search(r"--allow\s+(\w+)", command)
        aet = allowed.group(1) if allowed else "DCMTOOLS"
        probe = subprocess.run(
            ["dcmtools", "send", f"ANY@127.0.0.1:{port}", "ct.dcm", "--aet", aet, "--json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode != 0:
            probe_note = f"the probe (a C-STORE of ct.dcm) failed: {probe.stdout}{probe.stderr}"
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # --count 1 ends by itself
        if proc.poll() is None:
            for pid in _group_pids(proc.pid):
                with contextlib.suppress(OSError):
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    if b"listen" in argv and not argv[0].endswith(b"bash"):  # dcmtools, not the shell
                        os.kill(pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode, stdout, stderr, probe_note


def _run(example: Example, box: Sandbox) -> tuple[int, str, str, str]:
    cwd = box.workdir(example.source)
    text = _with_ports(example.text, box.ports)
    if example.source.endswith("--help") and "dcmtools listen" in text:
        return _run_server(text, cwd, box.env)
    script = _block_script(text) if not example.source.endswith("--help") else f"set -o pipefail\n{text}\n"
    # stdout and stderr go to files, not pipes: a server a block leaves in the background (a listen started
    # with &, for the next blocks of its page) must not hold the block open; it is stopped after its page.
    # One pair of files per example: such a server keeps writing to the stderr of the block that started it.
    name = re.sub(r"[^\w.-]+", "_", example.id)
    out, err = box.root / "output" / f"{name}.stdout", box.root / "output" / f"{name}.stderr"
    out.parent.mkdir(exist_ok=True)
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=box.env,
            stdin=subprocess.DEVNULL,
            stdout=stdout_file,
            stderr=stderr_file,
            start_new_session=True,
        )
        box.groups.setdefault(example.source, []).append(proc.pid)
        try:
            status = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return -1, out.read_text(), err.read_text() + f"\n(timed out after {TIMEOUT} s)", ""
    return status, out.read_text(), err.read_text(), ""


def _output_matches(expected: str, stdout: str) -> bool:
    parts = []
    for line in (line for line in expected.splitlines() if line.strip()):
        if line.strip() == "...":
            parts.append(r"(?:.*\n)*?")
        else:
            parts.append(".*".join(re.escape(part) for part in line.rstrip().split("...")) + r"[ \t]*\n")
    got = "".join(line.rstrip() + "\n" for line in stdout.splitlines() if line.strip())
    return re.fullmatch("".join(parts), got) is not None


def _check(example: Example, box: Sandbox) -> None:
    offending = OFF_LOOPBACK.findall(example.text)
    assert not offending, f"{example.id} names addresses off loopback {offending}: use the sandbox's peers"
    try:
        status, stdout, stderr, probe = _run(example, box)
    finally:
        box.done[example.source] = example.index + 1
        if example.index == len(BY_SOURCE[example.source]) - 1:
            box.stop(example.source)  # the page's last block: its servers go
    shown = (
        f"\n--- example ({example.id}):\n{example.text}\n--- stdout:\n{stdout[-3000:]}\n--- stderr:\n{stderr[-3000:]}"
    )
    assert "Traceback" not in stderr, shown
    assert not probe, probe + shown
    expected = _expected_status(example.text) if example.source.endswith("--help") else 0
    assert status == expected, f"exit status {status}, the text says {expected}" + shown
    if "jq" in example.text:
        assert "null" not in [line.strip() for line in stdout.splitlines()], (
            "prints a bare null: select the records meant (the summary record ends every stream)" + shown
        )
    for line in example.text.splitlines():
        note = PRINTS_NOTE.search(line)
        if note:
            assert note.group(1).strip() in stdout, f"the text says it prints {note.group(1).strip()!r}" + shown
    if example.expected_output is not None:
        assert _output_matches(_with_ports(example.expected_output, box.ports), stdout), (
            f"stdout does not match the ```text block that follows:\n{example.expected_output}" + shown
        )


def _catch_up(example: Example, box: Sandbox) -> None:
    """Run, unchecked, the earlier examples of the same source that have not run (a -k selection)."""
    for earlier in BY_SOURCE[example.source][box.done.get(example.source, 0) : example.index]:
        if earlier.skip is None and not OFF_LOOPBACK.findall(earlier.text):
            _run(earlier, box)
        box.done[example.source] = earlier.index + 1


def _params(examples: list[Example]) -> list[object]:
    """The examples this harness runs; the others are run elsewhere (test_the_examples_run_elsewhere_are_run)."""
    return [pytest.param(example, id=example.id) for example in examples if example.skip is None]


@pytest.mark.parametrize("example", _params(HELP_EXAMPLES))
def test_help_example(example: Example, sandbox: Sandbox) -> None:
    _catch_up(example, sandbox)
    _check(example, sandbox)


@pytest.mark.parametrize("example", _params(MARKDOWN_EXAMPLES))
def test_markdown_example(example: Example, sandbox: Sandbox) -> None:
    _catch_up(example, sandbox)
    _check(example, sandbox)


# ------------------------------------------------------------------------------------ the harness itself
def test_every_command_has_examples() -> None:
    """Every command's --help has examples the harness finds (a change of layout would silently run none)."""
    names = {name for name, command in _click_commands() if not getattr(command, "commands", None)}
    with_examples = {example.source.removesuffix(" --help") for example in HELP_EXAMPLES}
    assert names <= with_examples, names - with_examples


def test_block_script_checks_each_status(tmp_path: Path) -> None:
    """A block stops at the first command whose exit status is not what its text says."""
    ok = _block_script("true\nfalse  # exit status 1\necho done")
    assert subprocess.run(["bash", "-c", ok], capture_output=True, text=True).stdout == "done\n"
    bad = subprocess.run(["bash", "-c", _block_script("false\necho never")], capture_output=True, text=True)
    assert bad.returncode == 97 and "line 1 exited 1" in bad.stderr and "never" not in bad.stdout
    heredoc = _block_script("cat > x.txt <<'EOF'\na # not a note\nEOF\ncat x.txt")
    run = subprocess.run(["bash", "-c", heredoc], cwd=tmp_path, capture_output=True, text=True)
    assert run.stdout == "a # not a note\n", run.stderr


def test_output_matching() -> None:
    assert _output_matches("a\n...\nd", "a\nb\nc\nd\n")
    assert _output_matches("PACS ... ms", "PACS answered in 3 ms\n")
    assert not _output_matches("a\nd", "a\nb\nd\n")
    assert not _output_matches("x", "y\n")


def test_off_loopback_addresses_are_refused() -> None:
    for text in ("dcmtools echo PACS@10.0.0.5:104", "dcmtools echo https://pacs.example.org/dicom-web"):
        assert OFF_LOOPBACK.search(text), text
    for text in ("dcmtools echo PACS@127.0.0.1:11112", "dcmtools find web", "dcmtools send pacs study/"):
        assert not OFF_LOOPBACK.search(text), text


def test_key_file_wins_over_the_environments_key(tmp_path: Path) -> None:
    """Found by the examples: with DCMTOOLS_ANON_KEY exported, `anonymize --key-file` was a usage error."""
    from peers import dcmtools

    (tmp_path / "team.key").write_text("a secret the team shares\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DCMTOOLS_ANON_KEY": "another secret"}
    ct = str(SAMPLES / "human-ct/1-abdomen/ct1.dcm")
    by_file = dcmtools("anonymize", "--key-file", "team.key", "-o", "a", ct, cwd=tmp_path, env=env)
    assert by_file.returncode == 0, by_file.stderr
    both = dcmtools("anonymize", "--key", "x", "--key-file", "team.key", "-o", "b", ct, cwd=tmp_path, env=env)
    assert both.returncode == 2 and "not both" in both.stderr
    env["DCMTOOLS_EDIT_KEY"] = "an edit secret"
    edit = dcmtools("edit", "--new-uids", "all", "--key-file", "team.key", "-o", "c", ct, cwd=tmp_path, env=env)
    assert edit.returncode == 0, edit.stderr
    plain = dcmtools("edit", "--set", "InstitutionName=X", "-o", "d", ct, cwd=tmp_path, env=env)
    assert plain.returncode == 0, plain.stderr  # the exported key is not "--key without --new-uids"
    typed = dcmtools("edit", "--set", "InstitutionName=X", "--key", "k", "-o", "e", ct, cwd=tmp_path, env=env)
    assert typed.returncode == 2 and "--key is the key of --new-uids" in typed.stderr


def test_migrate_ignores_an_exported_key(tmp_path: Path) -> None:
    """Found by the guides' examples: with DCMTOOLS_ANON_KEY exported, every plain `migrate` was a usage error."""
    from peers import dcmtools

    shutil.copytree(SAMPLES / "vet-dog", tmp_path / "src")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DCMTOOLS_ANON_KEY": "a secret"}
    run = dcmtools("migrate", "src/", "dst/", "--journal", "j.db", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    given = dcmtools("migrate", "src/", "dst2/", "--journal", "j2.db", "--key", "x", cwd=tmp_path, env=env)
    assert given.returncode == 2 and "--key is the key of --anonymize" in given.stderr


def test_the_examples_run_elsewhere_are_run() -> None:
    """The examples this harness leaves out are exactly migrate's, and tests/test_migrate_examples.py runs
    those: the same lines, by its own rule."""
    from peers import dcmtools
    from test_migrate_examples import help_examples

    left_out = [example for example in HELP_EXAMPLES + MARKDOWN_EXAMPLES if example.skip is not None]
    assert {example.skip for example in left_out} == {MIGRATE_SKIP}
    runs_there = help_examples(dcmtools("migrate", "--help").stdout)
    assert len(runs_there) >= 6
    assert sorted(example.text.strip() for example in left_out) == sorted(runs_there)
