"""The import rules of ARCHITECTURE.md, enforced by reading the source (ast), not by convention.

Layers, top to bottom: cli -> features -> stream -> dicom, with stream.records (the record and
error vocabulary) at the very bottom.  A module may import its own layer and the layers below it.
"""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
PACKAGE = SRC / "dcmtools"

# The one module allowed to touch pynetdicom's internals (issue 15's seam).
SEAM = "dcmtools.net.seam"

# pynetdicom's machinery (the reactor, the state machine, the PDU codec, the sockets): internal even
# where documented, because its shape changes between releases.  Modules starting with "_" too.
PYNETDICOM_INTERNAL = {"acse", "dimse", "dimse_messages", "dul", "fsm", "pdu", "pdu_items", "timer", "transport"}

# Names that hold pynetdicom objects in this code base (Association, DUL, ACSE, servers, contexts...):
# a private attribute read or set through one of them is a pynetdicom private.
PYNETDICOM_OBJECTS = {
    "acse",
    "acse_module",
    "ae",
    "assoc",
    "association",
    "context",
    "cx",
    "dimse",
    "dul",
    "ordered",
    "server",
    "super",
}

LAYERS = ("dicom", "stream", "features", "cli")
# stream.records is the shared vocabulary (records, error codes, exit statuses): anyone may import it.
VOCABULARY = "dcmtools.stream.records"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


SOURCES = sources()


def imports(module: str, tree: ast.Module) -> list[tuple[str, int]]:
    """Every module ``module`` imports (absolute names, ``from x import y`` giving both x and x.y)."""
    is_package = SOURCES[module][0].name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return found


def layer(module: str) -> str | None:
    """The layer of a dcmtools module; None for the package root (``__version__``) and ``__main__``."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "dcmtools":
        return None
    if parts[1] in ("__init__", "__main__"):
        return None
    if parts[1] in ("dicom", "stream", "cli"):
        return parts[1]
    return "features"


def internal_modules(module: str) -> set[str]:
    return {m for m in SOURCES if m == module or m.startswith(module + ".")}


def test_the_layers_are_where_the_rules_say():
    """The rules below would pass vacuously if the packages moved: check they exist."""
    for package in ("dcmtools.dicom", "dcmtools.stream", "dcmtools.cli", "dcmtools.net", "dcmtools.deid"):
        assert package in SOURCES, package
    for module in ("reader", "writer", "dictionary", "values", "tagpath", "jsonmodel", "textdump", "codecs"):
        assert f"dcmtools.dicom.{module}" in SOURCES
    for module in ("inputs", "records", "outputs", "parallel"):
        assert f"dcmtools.stream.{module}" in SOURCES


def test_no_typer_outside_the_cli():
    offenders = [
        f"{module}:{line} imports {name}"
        for module, (_, tree) in SOURCES.items()
        if layer(module) != "cli"
        for name, line in imports(module, tree)
        if name == "typer" or name.startswith("typer.")
    ]
    assert offenders == []


def test_lower_layers_never_import_upper_ones():
    offenders = []
    for module, (_, tree) in SOURCES.items():
        own = layer(module)
        for name, line in imports(module, tree):
            if not name.startswith("dcmtools.") or name == VOCABULARY or name.startswith(VOCABULARY + "."):
                continue
            if name not in SOURCES:
                name = name.rpartition(".")[0]  # "from pkg import name": the package's layer
            target = layer(name)
            if target is None or own is None:
                continue  # __version__ from the root; __main__ runs the CLI
            if LAYERS.index(target) > LAYERS.index(own):
                offenders.append(f"{module}:{line} ({own}) imports {name} ({target})")
    assert offenders == []


def test_the_vocabulary_imports_nothing_of_dcmtools():
    """stream.records sits under dicom (which raises its errors), so it must import no other dcmtools module."""
    _, tree = SOURCES[VOCABULARY]
    assert [n for n, _ in imports(VOCABULARY, tree) if n.startswith("dcmtools")] == []


def test_nothing_imports_the_cli():
    offenders = [
        f"{module}:{line} imports {name}"
        for module, (_, tree) in SOURCES.items()
        if layer(module) != "cli" and module != "dcmtools.__main__"
        for name, line in imports(module, tree)
        if name == "dcmtools.cli" or name.startswith("dcmtools.cli.")
    ]
    assert offenders == []


def pynetdicom_privates(module: str, tree: ast.Module) -> set[tuple[str, str]]:
    """What ``module`` touches of pynetdicom's privates: internal modules, ``_`` names, ``obj._attr``."""
    found = set()
    for name, _ in imports(module, tree):
        parts = name.split(".")
        if parts[0] != "pynetdicom" or len(parts) < 2:
            continue
        if parts[1].startswith("_") or parts[1] in PYNETDICOM_INTERNAL:
            found.add((module, f"pynetdicom.{parts[1]}"))
        elif len(parts) > 2 and parts[2].startswith("_"):
            found.add((module, name))
    if not any(n.split(".")[0] == "pynetdicom" for n, _ in imports(module, tree)):
        return found  # a module that never imports pynetdicom holds no pynetdicom objects
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if node.attr.startswith("_dcmtools_"):  # our own state carried on a pynetdicom object
            continue
        holder = node.value
        if isinstance(holder, ast.Call):
            holder = holder.func  # super()._method
        if isinstance(holder, ast.Attribute):
            name = holder.attr  # event.assoc._kill
        elif isinstance(holder, ast.Name):
            name = holder.id
        else:
            continue
        if name in PYNETDICOM_OBJECTS:
            found.add((module, f".{node.attr}"))
    return found


def test_no_pynetdicom_private_outside_the_seam():
    found = set()
    for module, (_, tree) in SOURCES.items():
        if module != SEAM:
            found |= pynetdicom_privates(module, tree)
    assert sorted(found) == [], "a pynetdicom private outside dcmtools/net/seam.py"


def test_the_seam_rule_sees_what_it_looks_for():
    """The detector itself: each kind of private is caught, and public pynetdicom is not."""
    code = (
        "from pynetdicom import AE, evt, build_context\n"
        "from pynetdicom.presentation import StoragePresentationContexts\n"
        "from pynetdicom._globals import MODE_ACCEPTOR\n"
        "from pynetdicom import acse as acse_module\n"
        "import pynetdicom.dul\n"
        "from pynetdicom.dimse_primitives import C_FIND\n"
        "def f(event, assoc, self):\n"
        "    event.assoc._kill = True\n"
        "    assoc.dul._idle_timer.stop()\n"
        "    self._mine = 1\n"
        "    return assoc.accepted_contexts\n"
    )
    SOURCES["dcmtools.net.probe"] = (PACKAGE / "net" / "probe.py", ast.parse(code))
    try:
        found = {what for _, what in pynetdicom_privates("dcmtools.net.probe", ast.parse(code))}
    finally:
        del SOURCES["dcmtools.net.probe"]
    assert found == {"pynetdicom._globals", "pynetdicom.acse", "pynetdicom.dul", "._kill", "._idle_timer"}


@pytest.mark.parametrize(
    "code",
    [
        "import dcmtools.cli",
        "from dcmtools.cli import main\nsys.argv = ['dcmtools', '--help']\ntry:\n    main()\nexcept SystemExit:\n    pass",
        "from dcmtools.cli import main\nsys.argv = ['dcmtools', 'echo', '--help']\ntry:\n    main()\nexcept SystemExit:\n    pass",
        "from dcmtools.cli import app",
    ],
    ids=["import", "help", "echo-help", "all-commands"],
)
def test_the_cli_imports_no_heavy_library(code):
    script = (
        "import sys, io, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "print(sorted(m for m in ('pydicom', 'pynetdicom', 'numpy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def mypy_pending() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    overrides = config["tool"]["mypy"]["overrides"]
    pending = [o for o in overrides if o.get("ignore_errors") and not any("cli" in m for m in o["module"])]
    assert len(pending) == 1, "one 'strict pending (issue 15)' override"
    return pending[0]["module"]


def test_the_strict_pending_list_is_exactly_the_modules_that_fail(tmp_path):
    """mypy without the pending override fails in exactly the listed modules, so the list is the work left."""
    pytest.importorskip("mypy")
    text = (REPO / "pyproject.toml").read_text()
    config = tmp_path / "pyproject.toml"
    # The same configuration, with the pending modules' override pointed at a module that does not exist.
    pending = mypy_pending()
    start = text.index("module = [", text.index("# strict pending (issue 15)"))
    end = text.index("]", start) + 1
    config.write_text(text[:start] + 'module = ["dcmtools_no_such_module"]' + text[end:])
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failing = set()
    for line in done.stdout.splitlines():
        path, _, rest = line.partition(":")
        if path.endswith(".py") and " error: " in rest:
            failing.add(module_name(REPO / path))
    assert done.returncode != 0 or not pending
    assert sorted(failing) == sorted(pending)


def test_a_test_that_starts_a_peer_must_be_marked_peer():
    """conftest names the running test to peers.py: this test, unmarked, may not start one."""
    import peers

    with pytest.raises(pytest.fail.Exception, match="without pytest.mark.peer"):
        peers.require("sh")
    with pytest.raises(pytest.fail.Exception, match="without pytest.mark.peer"):
        with peers.running(["sleep", "5"]):
            pass


@pytest.mark.peer
def test_a_marked_test_may_start_one():
    import peers

    peers.require("sh")


# ---------------------------------------------------------------- peer fixtures in one place
# The one launcher of `dcmtools listen` and of Orthanc (and of DCMTK's servers: peers.dcmtk, peers.storescp).
FIXTURE_MODULES = {"peers.py"}


# What starts a process: subprocess.Popen / run / call / check_call / check_output, a bare Popen, peers.running.
PROCESS_STARTERS = {"Popen", "run", "call", "check_call", "check_output", "running"}


def _peer_command_line(node: ast.AST) -> bool:
    """A list or tuple holding the word "listen" beside "dcmtools" (or a spliced prefix such as ``*base()``), or
    one whose first word is Orthanc."""
    if not isinstance(node, ast.List | ast.Tuple) or not node.elts:
        return False
    words = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    prefixed = "dcmtools" in words or any(isinstance(e, ast.Starred) for e in node.elts)
    first = node.elts[0]
    orthanc = isinstance(first, ast.Constant) and isinstance(first.value, str) and Path(first.value).name == "Orthanc"
    return ("listen" in words and prefixed) or orthanc


def _starts_a_process(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr in PROCESS_STARTERS and isinstance(func.value, ast.Name) and func.value.id == "subprocess"
    return isinstance(func, ast.Name) and func.id in {"Popen", "running"}


def hand_launched_peers(source: str) -> list[int]:
    """Lines of ``source`` where a `dcmtools listen` or Orthanc command line is written out and started: given to
    a process starter directly, or through a variable or a function that returns it.  A command line that is
    only data (the words of a completion test) and ``dcmtools("listen", ...)`` (a one-shot run through
    peers.dcmtools) are no launch."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def carriers(node: ast.AST) -> set[str]:
        """The names that hold ``node``: a variable it is assigned to, a function that returns it."""
        names: set[str] = set()
        while node in parents:
            parent = parents[node]
            if isinstance(parent, ast.Assign):
                names |= {t.id for t in parent.targets if isinstance(t, ast.Name)}
                break
            if isinstance(parent, ast.Return):
                while parent in parents and not isinstance(parent, ast.FunctionDef):
                    parent = parents[parent]
                if isinstance(parent, ast.FunctionDef):
                    names.add(parent.name)
                break
            if isinstance(parent, ast.stmt):
                break
            node = parent
        return names

    # A variable assigned from a call of a carrier function carries the command line too.
    started: set[ast.AST] = set()  # every node inside the arguments of a process starter
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _starts_a_process(n)):
        for argument in [*call.args, *(k.value for k in call.keywords)]:
            started |= set(ast.walk(argument))
    started_names = {n.id for n in started if isinstance(n, ast.Name)}
    lines = []
    for node in ast.walk(tree):
        if not _peer_command_line(node):
            continue
        names = carriers(node)
        for assign in (n for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)):
            func = assign.value.func
            if isinstance(func, ast.Name) and func.id in names:
                names |= {t.id for t in assign.targets if isinstance(t, ast.Name)}
        if node in started or names & started_names:
            lines.append(node.lineno)
    return lines


def test_only_the_fixture_modules_start_listen_or_orthanc():
    """Tests start `dcmtools listen` and Orthanc through peers.listen / peers.orthanc (and peers.orthanc_again),
    never with a command line of their own."""
    offenders = {
        path.name: found
        for path in sorted((REPO / "tests").glob("*.py"))
        if path.name not in FIXTURE_MODULES and (found := hand_launched_peers(path.read_text()))
    }
    assert offenders == {}, "start these peers with tests/peers.py's launchers"


def test_the_launcher_rule_sees_what_it_looks_for():
    assert hand_launched_peers('subprocess.Popen([sys.executable, "-m", "dcmtools", "listen", "--port", "1"])')
    assert hand_launched_peers('cmd = [*_dcmtools_cmd(), "listen", "-d", d]\nproc = subprocess.Popen(cmd, stdout=f)')
    assert hand_launched_peers('running(["Orthanc", str(config)], port)')
    assert hand_launched_peers('subprocess.run(("/usr/sbin/Orthanc", path), timeout=5)')
    made = 'def _cmd(port):\n    return [sys.executable, "-m", "dcmtools", "listen", "--port", str(port)]\n'
    assert hand_launched_peers(made + "with running(_cmd(1), 1, log=log):\n    pass")
    assert hand_launched_peers(made + "argv = _cmd(1)\nsubprocess.Popen(argv)")
    assert not hand_launched_peers('dcmtools("listen", "--port", "1", "--idle-timeout", "0.5")')
    assert not hand_launched_peers('pytest.mark.parametrize("server", ["listen", "orthanc"])')
    assert not hand_launched_peers('CASES = (["dcmtools", "listen", "--allow", ""],)')  # words to complete
    assert hand_launched_peers((REPO / "tests" / "peers.py").read_text())  # the launchers themselves
