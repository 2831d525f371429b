"""Past one machine: --shard, --journal (kill -9 and resume) and --cluster on a real Dask cluster."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anonymize_data import ct, save

SRC = str(Path(__file__).resolve().parents[1] / "src")
BIN = Path(sys.executable).parent


def run(*args, stdin=None, env=None, check=True):
    environ = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    environ.pop("DASK_SCHEDULER_ADDRESS", None) if "DASK_SCHEDULER_ADDRESS" not in (env or {}) else None
    proc = subprocess.run(
        [sys.executable, "-m", "dcmtools", *args], capture_output=True, text=True, input=stdin, env=environ, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def records(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def make_tree(root: Path, studies: int, per_study: int) -> list[Path]:
    """``studies`` studies (patients) of ``per_study`` small CT files, one file per instance."""
    root.mkdir(parents=True, exist_ok=True)
    first = save(ct(patient="0", series=1, number=1), root / "seed.dcm")
    import pydicom

    seed = pydicom.dcmread(first)
    first.unlink()
    paths = []
    for s in range(studies):
        for n in range(per_study):
            ds = seed.copy()
            ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1019.{s}"
            ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1019.{s}.1"
            ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1019.{s}.1.{n}"
            ds.PatientID = f"P{s}"
            path = root / f"s{s:04d}" / f"i{n:03d}.dcm"
            path.parent.mkdir(exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def test_shards_cover_inputs_once_and_keep_studies(tmp_path):
    from dcmtools.stream.inputs import iter_inputs
    from dcmtools.stream.shard import parse_shard, select, study_key

    paths = make_tree(tmp_path / "in", 30, 4)
    (tmp_path / "in" / "zz-not-dicom.txt").write_text("hello")
    every = {str(p) for p in paths} | {str(tmp_path / "in" / "zz-not-dicom.txt")}
    seen: dict[str, int] = {}
    study_shard: dict[str, int] = {}
    for k in range(3):
        out = records(
            run(
                "dump", "--json", "-t", "StudyInstanceUID", "--shard", f"{k}/3", str(tmp_path / "in"), check=False
            ).stdout
        )
        files = [r for r in out if r["type"] == "file"]
        assert out[-1]["shard"] == f"{k}/3"
        for r in files:
            assert r["path"] not in seen, "a file on two shards"
            seen[r["path"]] = k
            if r["ok"]:
                uid = r["dataset"]["0020000D"]["Value"][0]
                assert study_shard.setdefault(uid, k) == k, "a study split over shards"
    assert set(seen) == every
    assert len(set(seen.values())) == 3
    # The schedulers' variables give the same split (Slurm counts, Kubernetes needs N).
    for k in range(3):
        slurm = parse_shard(None, {"SLURM_ARRAY_TASK_ID": str(k), "SLURM_ARRAY_TASK_COUNT": "3"})
        kube = parse_shard("/3", {"JOB_COMPLETION_INDEX": str(k)})
        assert slurm == kube == parse_shard(f"{k}/3", {})
        mine = {item.path for item in select(iter_inputs([str(tmp_path / "in")]), kube)}
        assert mine == {p for p, s in seen.items() if s == k}
    out = records(
        run(
            "dump",
            "--json",
            "-t",
            "PatientID",
            str(tmp_path / "in"),
            check=False,
            env={"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"},
        ).stdout
    )
    assert {r["path"] for r in out if r["type"] == "file"} == {p for p, s in seen.items() if s == 1}
    assert study_key(str(tmp_path / "in" / "zz-not-dicom.txt")).startswith("path:")
    bad = run("dump", "--shard", "3/3", str(tmp_path / "in"), check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    bad = run("dump", "--shard", "/3", str(tmp_path / "in"), check=False)
    assert bad.returncode == 2 and "which shard" in bad.stderr


def test_anonymize_killed_then_resumed_with_journal(tmp_path):
    make_tree(tmp_path / "in", 100, 20)  # 2,000 files
    journal, out = tmp_path / "anon.journal", tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "dcmtools",
        "anonymize",
        "--key",
        "k",
        "-o",
        str(out),
        "--journal",
        str(journal),
        "--json",
        str(tmp_path / "in"),
    ]
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    lines = 0
    for _line in proc.stdout:  # kill -9 part-way
        lines += 1
        if lines == 700:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    proc.stdout.close()
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*.dcm")}
    assert 700 <= len(before) < 2000
    from dcmtools.stream.journal import Journal

    with Journal(journal) as j:
        done = {item.data["out"] for item in j.items(states=["done"])}
    assert len(done) >= 699
    time.sleep(0.05)
    again = records(
        run("anonymize", "--key", "k", "-o", str(out), "--journal", str(journal), "--json", str(tmp_path / "in")).stdout
    )
    files = [r for r in again if r["type"] == "file"]
    assert len(files) == 2000 and all(r["ok"] for r in files)
    skipped = [r for r in files if r.get("skipped")]
    assert len(skipped) == len(done) and all("journal" in r["reason"] for r in skipped)
    assert {r["out"] for r in skipped} == done
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*.dcm")}
    assert len(after) == 2000
    for path in done:  # nothing that was done was written again
        assert after[Path(path)] == before[Path(path)]
    status = records(run("journal", "status", str(journal)).stdout)
    assert status[0]["counts"] == {"done": 2000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1, stopped by PID."""
    pytest.importorskip("distributed")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": SRC}
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs = []

    def start(name, *args):
        log = open(logs / f"{name}.log", "w")
        procs.append(subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT, env=env))
        log.close()

    start(
        "scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0", "--no-show"
    )
    address = f"tcp://127.0.0.1:{port}"
    workers = []
    for n in range(2):
        start(
            f"worker{n}",
            "worker",
            address,
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--dashboard-address",
            ":0",
            "--no-nanny",
            "--name",
            f"w{n}",
        )
        workers.append(procs[-1])
    from distributed import Client

    deadline = time.time() + 60
    with Client(address, timeout=30) as client:
        while len(client.scheduler_info()["workers"]) < 2:
            assert time.time() < deadline, "the Dask workers did not start"
            time.sleep(0.2)
    try:
        yield address, workers
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.dcm"))}


def test_cluster_outputs_identical_and_worker_killed(tmp_path, dask_cluster):
    address, workers = dask_cluster
    make_tree(tmp_path / "in", 25, 20)  # 500 files
    inputs = str(tmp_path / "in")
    for command in (["anonymize", "--key", "k"], ["transcode", "--to", "rle"]):
        name = command[0]
        local = records(run(*command, "-o", str(tmp_path / f"{name}-j1"), "-j", "1", "--json", inputs).stdout)
        remote = records(
            run(*command, "-o", str(tmp_path / f"{name}-dask"), "--cluster", address, "--json", inputs).stdout
        )
        assert remote[-1]["cluster"] == address
        assert [r["path"] for r in remote[:-1]] == [r["path"] for r in local[:-1]]
        assert all(r["ok"] for r in remote[:-1])
        assert _tree_bytes(tmp_path / f"{name}-dask") == _tree_bytes(tmp_path / f"{name}-j1")
    # The same output folder removed and written again by the same (long-lived) workers.
    import shutil

    shutil.rmtree(tmp_path / "transcode-dask")
    again = records(
        run(
            "transcode", "--to", "rle", "-o", str(tmp_path / "transcode-dask"), "--cluster", address, "--json", inputs
        ).stdout
    )
    assert again[-1]["ok"] == 500
    # One worker killed mid-run: every file still one record and one output.
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "dcmtools",
        "anonymize",
        "--key",
        "k",
        "-o",
        str(out),
        "--json",
        "--cluster",
        address,
        "--journal",
        str(tmp_path / "k.journal"),
        inputs,
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC}
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if len(lines) == 100:
            workers[0].send_signal(signal.SIGKILL)
    proc.wait(timeout=300)
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr[-2000:]
    files = [r for r in records("".join(lines)) if r["type"] == "file"]
    assert sorted(r["path"] for r in files) == sorted(r["path"] for r in local[:-1])
    assert len({r["path"] for r in files}) == 500 and all(r["ok"] for r in files)
    assert _tree_bytes(out) == _tree_bytes(tmp_path / "anonymize-j1")
    status = records(run("journal", "status", str(tmp_path / "k.journal")).stdout)
    assert status[0]["counts"] == {"done": 500}


def test_no_dask_without_cluster():
    code = (
        "import sys; from dcmtools.cli import load_commands; load_commands(['anonymize']); "
        "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}
    )
    assert out.stdout.strip() == "False", out.stderr


def test_migrate_shards_split_studies_as_the_file_commands_do(tmp_path):
    import migrate_data as D

    from dcmtools.stream.journal import Journal

    archive = D.build(tmp_path / "src", studies=21)
    shards = []
    for k in range(3):
        run(
            "migrate",
            str(tmp_path / "src"),
            str(tmp_path / f"dst{k}") + "/",
            "--journal",
            str(tmp_path / f"m{k}.journal"),
            "--shard",
            f"{k}/3",
            "--json",
        )
        with Journal(tmp_path / f"m{k}.journal") as j:
            studies = {item.id for item in j.items()}
            assert j.counts() == {"verified": len(studies)}
        files = records(
            run("dump", "--json", "-t", "StudyInstanceUID", "--shard", f"{k}/3", str(tmp_path / "src")).stdout
        )
        assert {r["dataset"]["0020000D"]["Value"][0] for r in files if r["type"] == "file"} == studies
        shards.append(studies)
    assert sum(len(s) for s in shards) == len(set().union(*shards)) == len(archive) == 21
    moved = {}
    for k in range(3):
        moved.update(D.folder_files(tmp_path / f"dst{k}"))
    D.assert_same(archive, moved)
    wrong = run(
        "migrate",
        str(tmp_path / "src"),
        str(tmp_path / "dst0") + "/",
        "--journal",
        str(tmp_path / "m0.journal"),
        "--shard",
        "1/3",
        check=False,
    )
    assert wrong.returncode == 2 and "shard" in wrong.stderr + wrong.stdout


def test_journal_merge_and_shard_mismatch(tmp_path):
    make_tree(tmp_path / "in", 12, 2)
    for k in range(2):
        run(
            "anonymize",
            "--key",
            "k",
            "-o",
            str(tmp_path / "out"),
            "--shard",
            f"{k}/2",
            "--journal",
            str(tmp_path / f"a{k}.journal"),
            "--json",
            str(tmp_path / "in"),
        )
    wrong = run(
        "anonymize",
        "--key",
        "k",
        "-o",
        str(tmp_path / "out"),
        "--shard",
        "1/2",
        "--journal",
        str(tmp_path / "a0.journal"),
        str(tmp_path / "in"),
        check=False,
    )
    assert wrong.returncode == 2 and "one journal per shard" in wrong.stderr
    status = records(run("journal", "status", str(tmp_path / "a0.journal"), str(tmp_path / "a1.journal")).stdout)
    assert [r["shard"] for r in status[:2]] == ["0/2", "1/2"]
    assert status[0]["total"] + status[1]["total"] == 24 and status[-1]["counts"] == {"done": 24}
    merged = records(
        run(
            "journal",
            "merge",
            str(tmp_path / "a0.journal"),
            str(tmp_path / "a1.journal"),
            "-o",
            str(tmp_path / "all.journal"),
        ).stdout
    )
    assert merged[0]["counts"] == {"done": 24}
    missing = run("journal", "status", str(tmp_path / "nope.journal"), check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_null_separated_stdin_streams(tmp_path):
    from dcmtools.stream.inputs import iter_stream

    class Blocks:  # a stdin that hands out small blocks and counts what was read
        def __init__(self, text):
            self.text, self.pos = text, 0

        def read(self, n=-1):
            n = 7 if n < 0 else min(n, 7)
            block = self.text[self.pos : self.pos + n]
            self.pos += len(block)
            return block

    paths = make_tree(tmp_path / "in", 2, 3)
    stream = Blocks("\0".join(str(p) for p in paths) + "\0")
    items = iter_stream(stream, null=True)
    first = next(items)
    assert first.path == str(paths[0]) and stream.pos < len(stream.text)  # not read whole
    assert [first.path, *(i.path for i in items)] == [str(p) for p in paths]


@pytest.mark.peer
def test_send_shards_and_journal_to_dcmtk_storescp(tmp_path):
    from netpeers import storescp

    paths = make_tree(tmp_path / "in", 10, 3)
    out = tmp_path / "received"
    with storescp(out) as peer:
        for k in range(2):
            got = records(
                run(
                    "send",
                    peer,
                    "--shard",
                    f"{k}/2",
                    "--journal",
                    str(tmp_path / f"s{k}.journal"),
                    "--json",
                    str(tmp_path / "in"),
                ).stdout
            )
            assert got[-1]["shard"] == f"{k}/2" and all(r["ok"] for r in got if r["type"] == "file")
        assert len(list(out.iterdir())) == len(paths) == 30  # the two shards: every file once
        again = records(
            run(
                "send",
                peer,
                "--shard",
                "0/2",
                "--journal",
                str(tmp_path / "s0.journal"),
                "--json",
                str(tmp_path / "in"),
            ).stdout
        )
        files = [r for r in again if r["type"] == "file"]
        assert files and all(r.get("skipped") for r in files)  # nothing sent twice
    status = records(run("journal", "status", str(tmp_path / "s0.journal"), str(tmp_path / "s1.journal")).stdout)
    assert status[-1]["counts"] == {"done": 30}
