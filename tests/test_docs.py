"""man/ and completions/ are generated from the CLI and must not be stale."""

import subprocess
import sys

from peers import REPO


def test_generated_docs_are_current():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_command_has_a_man_page_and_examples():
    sys.path.insert(0, str(REPO / "scripts"))
    import gen_docs

    root = gen_docs.click_root()
    for command in gen_docs.commands(root):
        assert (REPO / "man" / f"dcmtools-{command.name}.1").exists()
        assert "Examples" in (command.help or ""), f"dcmtools {command.name} --help has no examples"


def test_bash_completion_completes_commands_and_options():
    script = (
        f"source {REPO / 'completions' / 'dcmtools.bash'}\n"
        'COMP_WORDS=(dcmtools du); COMP_CWORD=1; _dcmtools; echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(dcmtools dump --fl); COMP_CWORD=2; _dcmtools; echo "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.stdout.splitlines() == ["dump", "--flat"], result.stdout + result.stderr


def test_each_command_runs_on_its_own():
    """main() registers only the command named on the command line: each must stand alone."""
    from peers import dcmtools

    from dcmtools.cli import COMMANDS

    for name in COMMANDS:
        result = dcmtools(name, "--help")
        assert result.returncode == 0 and f"dcmtools {name} [OPTIONS]" in result.stdout, (name, result.stderr)
