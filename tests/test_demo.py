"""./scripts/demo (README.md, docs/development.md) runs as written, from this checkout."""

import os
import subprocess

from peers import REPO


def test_demo_runs_the_whole_pipeline():
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "DCMTOOLS_PEERS"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "(0010,2201) LO PatientSpeciesDescription           Canine" in out  # dump tree
    assert "SMITH^REX" in out and "Canine / Beagle" in out  # find, worklist
    assert "SMITH^REX,Canine,20240116,," in out  # worklist --csv
    assert "3 completed, 3 received" in out  # find | move
    assert "committed" in out  # anonymize | send | commit
    assert "change samples/vet-dog/cr1.dcm: PatientID 'VET042' -> 'CLINIC-0042'" in out  # edit --dry-run
    assert '"IssuerOfPatientID":"NORTH-VET"' in out  # edit | dump
    assert "JPEG-LS lossless  0x0000" in out  # transcode | send
    assert "film 2  written" in out  # print --dry-run
    assert ": matched (" in out and " verified;" in out  # migrate, migrate --status
    assert "PASS" in out  # verify-display
    assert "skip   samples/vet-dog/cr1.dcm: done in the journal" in out  # anonymize --journal, run again
    assert "anon.journal: anonymize: 2 done" in out  # journal status
    assert "Demo done" in result.stderr
