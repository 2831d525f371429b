"""migrate without network peers: pacing (window, rate) on an injectable clock, folder to folder, the CLI's
usage errors and --status."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import migrate_data as D
import pytest
from peers import REPO, dcmtools
from qrpeers import records

sys.path.insert(0, str(REPO / "src"))
from dcmtools.migrate import MigrateOptions, Migration, Pacer, Rate, Window, parse_endpoint  # noqa: E402
from dcmtools.stream.records import DcmtoolsError  # noqa: E402


class FakeTime:
    """A clock that moves only when slept on (and by ``step`` per reading, as work takes time)."""

    def __init__(self, start: dt.datetime, step: float = 0.0) -> None:
        self.now = start.timestamp()
        self.step = step
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self.now += self.step
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_window_and_rate_parse() -> None:
    window = Window.parse("19:00-06:00")
    assert str(window) == "19:00-06:00"
    day = dt.datetime(2024, 3, 1)
    assert window.inside((day + dt.timedelta(hours=23)).timestamp())
    assert window.inside((day + dt.timedelta(hours=5, minutes=59)).timestamp())
    assert window.seconds_until_open((day + dt.timedelta(hours=12)).timestamp()) == 7 * 3600
    assert Rate.parse("20") == Rate(20, "instances") == Rate.parse("20/s")
    assert Rate.parse("5MB/s") == Rate(5e6, "bytes")
    for bad in ("25:00-01:00", "7pm-6am"):
        with pytest.raises(DcmtoolsError):
            Window.parse(bad)
    with pytest.raises(DcmtoolsError):
        Rate.parse("fast")


def test_pacer_waits_for_the_window_and_keeps_the_rate() -> None:
    fake = FakeTime(dt.datetime(2024, 3, 1, 12, 0))
    pacer = Pacer(Window.parse("19:00-19:30"), Rate.parse("0.01"), fake.clock, fake.sleep)
    starts = []
    for _ in range(30):  # 30 instances at 0.01/s: 3000 s, more than one 30-minute window
        pacer.wait(1)
        starts.append(fake.now)
    assert all(Window.parse("19:00-19:30").inside(t) for t in starts)
    days = {dt.datetime.fromtimestamp(t).date() for t in starts}
    assert len(days) == 2  # paused overnight, resumed by itself the next evening
    for before, after in zip(starts, starts[1:], strict=False):
        assert after - before >= 100 - 1e-6  # never faster than the rate


@pytest.fixture()
def folder_archive(tmp_path: Path) -> dict[str, list[Path]]:
    return D.build(tmp_path / "src", studies=6)


def test_migration_paced_by_window_and_rate(tmp_path: Path, folder_archive) -> None:
    """The library with an injected clock: studies move only inside the window, within the rate."""
    fake = FakeTime(dt.datetime(2024, 3, 1, 12, 0), step=0.001)
    options = MigrateOptions(
        window=Window.parse("19:00-19:10"), rate=Rate.parse("0.01"), clock=fake.clock, sleep=fake.sleep
    )
    migration = Migration(
        parse_endpoint(str(tmp_path / "src")),
        parse_endpoint(str(tmp_path / "dst") + "/"),
        tmp_path / "j.db",
        None,
        options,
    )
    out = list(migration.run())
    assert migration.exit_status == 0, out
    migration.close()
    studies = sorted((r for r in out if r["type"] == "study"), key=lambda r: r["started"])  # completion order varies
    assert len(studies) == 6 and all(r["ok"] for r in studies)
    starts = [dt.datetime.fromisoformat(r["started"]) for r in studies]
    window = Window.parse("19:00-19:10")
    assert all(window.inside(t.timestamp()) for t in starts)  # only inside the window
    assert starts[0] == dt.datetime(2024, 3, 1, 19, 0)  # waited from noon, started by itself
    assert len({t.date() for t in starts}) == 2  # 10 minutes were not enough: paused overnight
    # Within the rate, each evening: the instances started before a study are no more than 0.01/s allow.
    for day in {t.date() for t in starts}:
        that_day = [(r, t) for r, t in zip(studies, starts, strict=False) if t.date() == day]
        done = 0
        for record, start in that_day:
            assert done <= 0.01 * (start - that_day[0][1]).total_seconds() + 1e-6
            done += record["instances"]
    D.assert_same(folder_archive, D.folder_files(tmp_path / "dst"))
    D.assert_same(folder_archive, D.folder_files(tmp_path / "dst"))


def test_folder_to_folder_cli_bad_file_and_status(tmp_path: Path, folder_archive) -> None:
    (tmp_path / "src" / "notes.txt").write_text("not DICOM")
    journal = tmp_path / "j.db"
    result = dcmtools("migrate", str(tmp_path / "src"), str(tmp_path / "dst") + "/", "--journal", str(journal))
    assert result.returncode == 1  # the bad file is reported...
    out = records(result.stdout)
    assert [r["error"]["code"] for r in out if r.get("type") == "file"] == ["not_dicom"]
    assert out[-1]["states"] == {"verified": 6}  # ...and every study went through
    D.assert_same(folder_archive, D.folder_files(tmp_path / "dst"))
    again = dcmtools("migrate", str(tmp_path / "src"), str(tmp_path / "dst") + "/", "--journal", str(journal))
    assert again.returncode == 0, again.stdout  # resumed: nothing left to do, all verified
    assert not [r for r in records(again.stdout) if r.get("type") == "study"]
    status = dcmtools("migrate", "--journal", str(journal), "--status", "--no-json")
    assert status.returncode == 0 and "6 verified" in status.stdout
    started = time.monotonic()
    piped = dcmtools("migrate", "--journal", str(journal), "--status")
    assert json.loads(piped.stdout.splitlines()[0])["states"]["verified"] == 6
    assert time.monotonic() - started < 30


def test_usage_errors(tmp_path: Path, folder_archive) -> None:
    journal = tmp_path / "j.db"
    missing = dcmtools("migrate", "--journal", str(tmp_path / "none.db"), "--status")
    assert missing.returncode == 2 and "no journal" in missing.stderr
    bad_window = dcmtools(
        "migrate", str(tmp_path / "src"), str(tmp_path / "dst") + "/", "--journal", str(journal), "--window", "7pm-6am"
    )
    assert bad_window.returncode == 2 and "HH:MM-HH:MM" in bad_window.stderr
    assert (
        dcmtools("migrate", str(tmp_path / "src"), str(tmp_path / "dst") + "/", "--journal", str(journal)).returncode
        == 0
    )
    other = dcmtools("migrate", str(tmp_path / "src"), str(tmp_path / "elsewhere") + "/", "--journal", str(journal))
    assert other.returncode == 2 and "journal of the migration" in other.stderr
    no_source = dcmtools("migrate", str(tmp_path / "nothere"), str(tmp_path / "dst") + "/", "--journal", str(journal))
    assert no_source.returncode == 2
    not_journal = tmp_path / "text.db"
    not_journal.write_text("hello " * 1000)
    result = dcmtools("migrate", str(tmp_path / "src"), str(tmp_path / "dst") + "/", "--journal", str(not_journal))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_verify_only_on_a_fresh_journal_inventories_first(tmp_path: Path, folder_archive) -> None:
    """--verify-only with a new journal: the source is inventoried, nothing is moved, and the studies
    missing at the destination make the exit status 1."""
    journal = tmp_path / "j.db"
    result = dcmtools(
        "migrate", str(tmp_path / "src"), str(tmp_path / "dst") + "/", "--journal", str(journal), "--verify-only"
    )
    assert result.returncode == 1
    out = records(result.stdout)
    assert not [r for r in out if r.get("type") == "study"] and not (tmp_path / "dst").exists()
    assert [r["result"] for r in out if r.get("type") == "verify"] == ["missing"] * 6
