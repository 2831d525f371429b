"""Issue 21: what a newcomer hit in the first hour, one test per fix (no peer involved here)."""

import json
import os

import pytest
from peers import REPO, dcmtools

CT = REPO / "samples" / "human-ct"


# --no-json is the readable form for every file command, errors included (a missing input is not JSON).
@pytest.mark.parametrize(
    "command",
    [
        ["dump"],
        ["anonymize", "-o", "{out}"],
        ["transcode", "--to", "explicit", "-o", "{out}"],
        ["edit", "--set", "PatientName=X", "-o", "{out}"],
        ["render", "-o", "{out}"],
        ["verify-display"],
        ["print", "--dry-run", "-o", "{out}"],
    ],
    ids=lambda c: c[0],
)
def test_no_json_missing_input_is_a_readable_line(command, tmp_path):
    args = [a.replace("{out}", str(tmp_path / "out")) for a in command]
    result = dcmtools(*args, "--no-json", str(tmp_path / "missing.dcm"), env=_env(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "missing.dcm" in result.stdout and "FAILED" in result.stdout
    assert not result.stdout.lstrip().startswith("{"), result.stdout  # not a JSON record
    assert "Traceback" not in result.stderr


def test_dump_no_json_missing_beside_good_files(tmp_path):
    result = dcmtools("dump", "--no-json", "-j", "2", str(tmp_path / "missing.dcm"), str(CT))
    assert result.returncode == 1
    assert result.stdout.startswith(f"# {tmp_path / 'missing.dcm'}\n# FAILED (not_found): no such file")
    assert "# transfer syntax" in result.stdout  # the good files are still dumped as trees
    assert "{" not in result.stdout.splitlines()[1]


# A usage error (exit status 2) prints its message and no "0 item(s)" summary, in either form.
@pytest.mark.parametrize("form", ["--json", "--no-json"])
@pytest.mark.parametrize(
    "command",
    [
        ["echo", "nosuchpeer"],
        ["find", "nosuchpeer", "-k", "PatientID=1"],
        ["send", "nosuchpeer", str(CT)],
        ["move", "nosuchpeer", "--to", "X", "-k", "StudyInstanceUID=1"],
        ["find", "X@127.0.0.1:1", "-L", "nosuchlevel"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_usage_error_prints_no_summary(command, form, tmp_path):
    result = dcmtools(*command, form, env=_env(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "item(s)" not in result.stderr and "summary" not in result.stderr
    assert result.stderr.strip() and "Traceback" not in result.stderr


def test_failed_run_keeps_the_summary(tmp_path):
    # Only usage errors lose the summary: a run that failed on its inputs still ends with it.
    result = dcmtools("dump", "--json", str(tmp_path / "missing.dcm"))
    assert json.loads(result.stdout.splitlines()[-1])["type"] == "summary"


# print --dry-run needs no printer.
def test_print_dry_run_needs_no_printer(tmp_path):
    out = tmp_path / "films"
    one = next(CT.rglob("ct*.dcm"))
    result = dcmtools("print", "--dry-run", str(one), "-o", str(out), env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    films = [json.loads(line) for line in result.stdout.splitlines()]
    assert films[0]["type"] == "film" and films[0]["images"][0]["path"] == str(one)
    assert (out / "film-0001.dcm").is_file()
    # Inputs from stdin, no argument at all.
    piped = dcmtools("print", "--dry-run", "-o", str(tmp_path / "piped"), input=f"{one}\n", env=_env(tmp_path))
    assert piped.returncode == 0 and (tmp_path / "piped" / "film-0001.dcm").is_file(), piped.stderr
    # A printer named first is still accepted (and not contacted).
    named = dcmtools("print", "P@127.0.0.1:9", str(one), "--dry-run", "-o", str(tmp_path / "named"))
    assert named.returncode == 0 and (tmp_path / "named" / "film-0001.dcm").is_file(), named.stderr
    # Without --dry-run a printer is needed.
    bare = dcmtools("print")
    assert bare.returncode == 2 and "which printer" in bare.stderr


def _env(tmp_path):
    # No peers file of the user's, a key for anonymize.
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "DCMTOOLS_PEERS": str(tmp_path / "no-peers.toml"),
        "DCMTOOLS_ANON_KEY": "test-key",
        "XDG_CONFIG_HOME": str(tmp_path),
    }


def test_plot_hint_gives_the_pypi_and_the_checkout_spelling(tmp_path):
    import subprocess
    import sys

    from peers import REPO as repo

    readings = tmp_path / "r.csv"
    readings.write_text("ddl,luminance\n" + "".join(f"{d},{0.5 + d * 1.5:.3f}\n" for d in range(0, 256, 15)))
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None  # as if it were not installed\n"
        "from dcmtools.cli import main\n"
        f"sys.argv = ['dcmtools', 'verify-display', {str(readings)!r}, '--plot', {str(tmp_path / 'qa.png')!r}]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path), timeout=60, cwd=repo
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())  # typer wraps the usage message
    assert "pip install 'dcmtools[plot]'" in message
    assert ".venv/bin/pip install -e '.[plot]'" in message


def test_man_page_environment_lists_every_variable_the_code_reads():
    import re

    read = set()
    for path in (REPO / "src" / "dcmtools").rglob("*.py"):
        read |= set(re.findall(r"\bDCMTOOLS_[A-Z_]+\b", path.read_text(encoding="utf-8")))
    assert "DCMTOOLS_ANON_KEY" in read  # (the grep itself works)
    page = (REPO / "man" / "dcmtools.1").read_text(encoding="utf-8")
    environment = page.split(".SH ENVIRONMENT", 1)[1].split(".SH ", 1)[0].replace("\\-", "-").replace("\\fB", "")
    missing = sorted(name for name in read if name not in environment)
    assert not missing, f"man/dcmtools.1 ENVIRONMENT lacks {missing} (scripts/gen_docs.py ENVIRONMENT)"


def test_samples_one_description_per_study():
    # The SC image of samples/human-ct is part of the CT study: it carries the study's description,
    # so the study is listed as "CT sample study" whichever image an archive indexes first.
    records_ = [json.loads(line) for line in dcmtools("dump", "--flat", str(REPO / "samples")).stdout.splitlines()]
    descriptions: dict[str, set[str]] = {}
    for record in records_:
        if record["type"] == "file" and record["ok"] and "StudyInstanceUID" in record["dataset"]:
            data = record["dataset"]
            descriptions.setdefault(data["StudyInstanceUID"], set()).add(data.get("StudyDescription"))
    assert all(len(names) == 1 for names in descriptions.values()), descriptions
    ct = {r["dataset"]["StudyDescription"] for r in records_ if r["type"] == "file" and "human-ct" in r["path"]}
    assert ct == {"CT sample study"}


def test_setup_env_installs_only_when_needed(tmp_path):
    """scripts/setup-env.sh's setup_venv, with a stand-in python that records each pip install:
    a clean clone installs, a second run does not, a changed pyproject.toml or a lost install does."""
    import shutil
    import stat
    import subprocess

    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup-env.sh", tmp_path / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/bin/sh\n"
        '# "-m venv DIR" makes DIR/bin/python (this script); "-m pip install ..." is recorded\n'
        'if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi\n'
        'here=$(dirname "$0"); echo "$*" >> "$here/../pip-calls"\n'
        'printf "#!/bin/sh\\n" > "$here/dcmtools"; chmod +x "$here/dcmtools"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    def setup() -> int:
        subprocess.run(
            ["bash", "-c", "set -euo pipefail; source scripts/setup-env.sh; setup_venv"],
            cwd=tmp_path,
            env={**os.environ, "PYTHON": str(fake)},
            check=True,
            timeout=60,
        )
        calls = tmp_path / ".venv" / "pip-calls"
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    assert setup() == 1  # a clean clone: venv made, package installed
    assert "install" in (tmp_path / ".venv" / "pip-calls").read_text()
    assert setup() == 1  # nothing changed: no reinstall
    with open(tmp_path / "pyproject.toml", "a") as stream:
        stream.write("\n# a dependency changed\n")
    assert setup() == 2  # pyproject.toml changed: install again
    assert setup() == 2
    (tmp_path / ".venv" / "bin" / "dcmtools").unlink()
    assert setup() == 3  # the install is gone: install again
