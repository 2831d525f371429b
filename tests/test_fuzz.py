"""Fuzz: a few thousand mutated and odd inputs through dump, anonymize, transcode and send (issue 13).

Each command must give exactly one record per input, no traceback, no
``internal`` record, end within its time bound, and leave every input as it
was; anonymize must leave no seeded identifier in an ``ok`` output (see
``fuzz_data`` for which mutants that applies to).  send goes to a
``dcmtools listen`` started here.  The figures (inputs, records, codes per
command) are printed (``pytest -s``) for the issue's closing note.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import time
from pathlib import Path

import pytest
from commitpeers import listen
from fuzz_data import MARK, build, tree_hashes
from peers import dcmtools

COUNT = int(os.environ.get("DCMTOOLS_FUZZ_COUNT", "4000"))
SEED = int(os.environ.get("DCMTOOLS_FUZZ_SEED", "13"))


def record_path(record: dict) -> str:
    if "path_bytes" in record:
        return os.fsdecode(base64.b64decode(record["path_bytes"]))
    return record["path"]


def check_run(name: str, result, corpus, figures: dict) -> list[dict]:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stdout.split("\n")[:-1]  # JSON Lines: split on \n only (values may hold U+0085, U+2028)
    records = [json.loads(line) for line in lines]  # every line is valid JSON
    summary = records[-1]
    assert summary["type"] == "summary", records[-3:]
    files = [r for r in records if r.get("type") == "file"]
    others = [r for r in records[:-1] if r.get("type") != "file"]
    seen = collections.Counter(record_path(r) for r in files)
    expected = collections.Counter(corpus.expected)
    missing = expected - seen
    extra = seen - expected
    assert not missing and not extra, (name, list(missing)[:10], list(extra)[:10])
    internal = [r for r in files if (r.get("error") or {}).get("code") == "internal"]
    assert not internal, internal[:5]
    codes = collections.Counter((r.get("error") or {}).get("code", "ok") for r in files)
    assert summary["exit_status"] != 0 and summary["failed"] > 0  # never 0 with failures
    figures[name] = {
        "inputs": len(corpus.expected),
        "records": len(files),
        "other_records": len(others),
        "codes": dict(sorted(codes.items())),
        "exit_status": summary["exit_status"],
        "seconds": summary["seconds"],
    }
    return files


@pytest.mark.peer
def test_fuzz_every_input_one_record(tmp_path):
    started = time.monotonic()
    corpus = build(tmp_path, COUNT, SEED)
    before = tree_hashes(corpus.root)
    args = [str(corpus.root), *corpus.extra_args]
    figures: dict = {}

    dumped = dcmtools("dump", "--json", *args, timeout=300)
    check_run("dump", dumped, corpus, figures)
    dumped = dcmtools("dump", "--no-json", "-j", "2", *args, timeout=300)
    assert "Traceback" not in dumped.stderr and "\x1b" not in dumped.stdout and "\x07" not in dumped.stdout

    out = tmp_path / "anon"
    # --keep-names: mutants of one file share their UIDs, so UID names would make most of them `exists`
    anonymized = dcmtools(
        "anonymize", "--key", "fuzz", "--keep-names", "--allow-burned-in", "-j", "2", "-o", str(out), *args, timeout=300
    )
    files = check_run("anonymize", anonymized, corpus, figures)
    leaks = []
    checked = 0
    for record in files:
        if record["ok"] and record_path(record) in corpus.checked:
            checked += 1
            data = Path(record["out"]).read_bytes()
            if MARK in data:
                leaks.append((record_path(record), data[data.find(MARK) - 16 : data.find(MARK) + 24]))
        for warning in record.get("warnings", ()):
            assert "FUZZSEED" not in warning, (record_path(record), warning)
    assert not leaks, leaks[:5]
    figures["anonymize"]["identifier_checked_ok_outputs"] = checked

    transcoded = dcmtools("transcode", "--to", "explicit", "-j", "2", "-o", str(tmp_path / "tx"), *args, timeout=300)
    check_run("transcode", transcoded, corpus, figures)
    transcoded = dcmtools("transcode", "--to", "rle", "-j", "2", "-o", str(tmp_path / "rle"), *args, timeout=300)
    check_run("transcode_rle", transcoded, corpus, figures)  # the encoders too

    with listen(tmp_path) as (peer, _store, _log):
        sent = dcmtools("send", peer, "--timeout", "10", *args, timeout=300)
    check_run("send", sent, corpus, figures)

    assert tree_hashes(corpus.root) == before  # no input changed
    figures["total_seconds"] = round(time.monotonic() - started, 1)
    print("\nFUZZ FIGURES", json.dumps(figures, indent=1))
