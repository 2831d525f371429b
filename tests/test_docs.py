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


def test_manual_command_pages_are_generated_from_the_cli():
    """docs/commands/<command>.md: one per command, made by gen_docs.py (so --check above covers their drift)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import gen_docs

    root = gen_docs.click_root()
    generated = gen_docs.outputs()
    for command in gen_docs.commands(root):
        page = REPO / "docs" / "commands" / f"{command.name}.md"
        assert page in generated and page.exists(), page
        assert f"# dcmtools {command.name}\n" in page.read_text()
    assert "`not_sent`" in generated[REPO / "docs" / "reference" / "error-codes.md"]  # from ErrorCode


def test_manual_nav_lists_every_command_page():
    import yaml  # comes with mkdocs

    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]

    def pages(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    listed = set(pages(nav))
    on_disk = {f"commands/{p.name}" for p in (REPO / "docs" / "commands").glob("*.md")}
    assert on_disk <= listed, sorted(on_disk - listed)


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_manual_builds_strict(tmp_path):
    """mkdocs build --strict: a broken link, anchor or nav entry fails (mkdocs comes with the test extra)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "commands" / "dump" / "index.html").exists()
