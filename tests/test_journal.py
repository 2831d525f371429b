"""The journal (dcmtools.stream.journal): states, attempts, plan, streaming, merge, and kill -9 of a writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from peers import REPO

sys.path.insert(0, str(REPO / "src"))
from dcmtools.stream.journal import Journal, JournalError  # noqa: E402
from dcmtools.stream.journal_merge import merge  # noqa: E402


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_add_states_attempts_errors(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", kind="test") as j:
        assert j.add([("a", {"n": 1}), ("b", None), "c"]) == 3
        assert j.add(["a", "d"]) == 1  # a known id keeps its state
        assert j.counts() == {"planned": 4}
        assert j.begin("a") == 1
        assert j.begin("a") == 2
        j.set_state("a", "failed", error={"code": "x", "message": "refused"})
        j.set_state("b", "done", data={"instances": 3})
        item = j.get("a")
        assert (item.state, item.attempts, item.last_error["message"]) == ("failed", 2, "refused")
        assert j.get("b").data == {"instances": 3}
        assert j.counts() == {"planned": 2, "failed": 1, "done": 1}
        assert [i.id for i in j.items(states=["planned", "failed"], max_attempts=2)] == ["c", "d"]
        assert [i.id for i in j.items(states=["planned", "failed"], max_attempts=3)] == ["a", "c", "d"]
    with pytest.raises(JournalError, match="test run"):
        Journal(tmp_path / "j.db", kind="other")
    with pytest.raises(JournalError, match="not a journal"):
        (tmp_path / "bad.db").write_text("not sqlite at all, just text" * 100)
        Journal(tmp_path / "bad.db")


def test_items_stream_in_pages_while_changing(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as j:
        j.add(f"id{n:05d}" for n in range(2500))
        seen = []
        for item in j.items(states=["planned"], page=100):
            j.set_state(item.id, "done")  # changing rows under the iterator
            seen.append(item.id)
        assert len(seen) == len(set(seen)) == 2500
        assert j.counts() == {"done": 2500}


def test_plan_done_is_atomic_with_its_items(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as j:
        j.plan_add(["w1", "w2"])
        j.plan_done("w1", [("s1", {"date": "20240101"}), ("s2", None)])
        assert j.plan_state("w1") == "done" and j.plan_state("w2") == "pending"
        with pytest.raises(RuntimeError):
            with j.transaction():
                j.plan_done("w2", ["s3"])
                raise RuntimeError("killed between the items and the window")
        assert j.plan_state("w2") == "pending" and j.get("s3") is None
        assert j.plan_counts() == {"done": 1, "pending": 1}


def test_status_rate_and_eta(tmp_path: Path) -> None:
    clock = Clock()
    with Journal(tmp_path / "j.db", clock=clock) as j:
        j.add(f"i{n}" for n in range(100))
        for n in range(30):
            clock.t += 2  # one item every 2 s
            j.set_state(f"i{n}", "verified")
        status = j.status(done=("verified",))
        assert status["counts"] == {"planned": 70, "verified": 30}
        assert status["done"] == 30 and status["left"] == 70
        assert 0.3 < status["rate"] < 0.7
        assert 100 < status["eta_seconds"] < 250


def test_merge_shards(tmp_path: Path) -> None:
    rank = ("planned", "failed", "done")
    with Journal(tmp_path / "a.db", kind="k") as a:
        a.add(["x", "y"])
        a.set_state("x", "done")
        a.plan_done("p1")
    with Journal(tmp_path / "b.db", kind="k") as b:
        b.add(["x", "z"])
        b.set_state("z", "failed", error={"message": "no"})
    counts = merge(tmp_path / "all.db", [tmp_path / "a.db", tmp_path / "b.db"], rank=rank)
    assert counts == {"done": 1, "planned": 1, "failed": 1}
    with Journal(tmp_path / "all.db") as j:
        assert j.get("x").state == "done" and j.meta("kind") == "k" and j.plan_state("p1") == "done"


WRITER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {src!r})
    from dcmtools.stream.journal import Journal
    j = Journal(sys.argv[1], kind="test")
    work = sys.argv[2]
    j.add(f"item{{n:05d}}" for n in range(5000))
    for item in j.items(states=["planned"]):
        j.begin(item.id)
        # the work: a marker file per item, then the journal says done
        with open(os.path.join(work, item.id), "w") as f:
            f.write("x")
        j.set_state(item.id, "done", data={{"marker": item.id}})
        print(item.id, flush=True)
""")


def test_kill_9_of_a_writer_then_resume(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=str(REPO / "src")))
    work = tmp_path / "work"
    work.mkdir()
    journal = tmp_path / "run.db"
    proc = subprocess.Popen([sys.executable, str(script), str(journal), str(work)], stdout=subprocess.PIPE, text=True)
    reported = 0
    for _ in proc.stdout:
        reported += 1
        if reported == 700:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Journal(journal, kind="test") as j:
        counts = j.counts()
        assert sum(counts.values()) == 5000  # the plan survived whole
        done = {item.id for item in j.items(states=["done"])}
        assert len(done) >= reported  # what the writer reported done is done
        assert done <= {p.name for p in work.iterdir()}  # nothing done that was not
        assert counts["done"] == len(done) and counts["planned"] == 5000 - len(done)
        in_flight = [i for i in j.items(states=["planned"]) if i.attempts]
        assert len(in_flight) <= 1  # at most the item in flight was begun and not finished
    # resume: the same writer finishes the rest
    result = subprocess.run(
        [sys.executable, str(script), str(journal), str(work)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 5000 - len(done)  # nothing done was redone
    with Journal(journal) as j:
        assert j.counts() == {"done": 5000}
        status = j.status()
        assert status["left"] == 0 and status["eta_seconds"] == 0


def test_parts_grouped_and_paged(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as j:
        j.add_parts((f"study{n % 3}", f"sop{n:04d}", f"series{n % 2}", {"path": f"/x/{n}"}) for n in range(2100))
        j.add_parts([("study0", "sop0000", "series0", None)])  # known: kept
        groups = list(j.part_groups(page=2))
        assert groups == [("study0", 700, 2), ("study1", 700, 2), ("study2", 700, 2)]
        parts = list(j.parts("study1", page=64))
        assert len(parts) == 700 and parts[0][2]["path"] == "/x/1"
        j.add(["study0"])
        j.begin("study0")
        j.undo_attempt("study0", {"message": "peer down"})
        assert j.get("study0").attempts == 0 and j.get("study0").last_error == {"message": "peer down"}
        j.plan_set("w", "incomplete", {"why": "capped"})
        assert list(j.plan_units(["incomplete"])) == [("w", "incomplete", {"why": "capped"})]


def test_manual_example_runs(tmp_path: Path, monkeypatch) -> None:
    text = (REPO / "docs" / "reference" / "journal.md").read_text()
    start = text.index("```python\nfrom dcmtools.stream.journal import")
    code = text[start + len("```python\n") : text.index("```", start + 10)]
    monkeypatch.chdir(tmp_path)
    for shard in ("shard-0.journal", "shard-1.journal"):
        with Journal(shard, kind="anonymize") as j:
            j.add([shard])
    exec(compile(code, "docs/reference/journal.md", "exec"), {})
    with Journal("run.journal") as j:
        assert j.counts() == {"done": 2}
    with Journal("all.journal") as j:
        assert j.counts() == {"planned": 2}
