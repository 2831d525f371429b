"""Good manners to a production archive: a time window and a rate, on an injectable clock.

    pacer = Pacer(window=Window.parse("19:00-06:00"), rate=Rate.parse("20/s"))
    pacer.wait()              # before a study: inside the window, and under the rate
    pacer.account(instances=12, size=6_000_000)  # after it

``clock`` (seconds since the epoch) and ``sleep`` are injectable, so that a
test can run a night of pauses in no time.  The window is in local time; one
that ends before it starts (19:00-06:00) runs over midnight.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus


@dataclass(frozen=True)
class Window:
    start: int  # minutes after midnight
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text or "")
        if not match:
            raise DcmtoolsError(
                ErrorCode.BAD_VALUE,
                f"`window` {text!r}: write it as HH:MM-HH:MM (e.g. 19:00-06:00)",
                None,
                ExitStatus.USAGE,
            )
        h1, m1, h2, m2 = map(int, match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`window` {text!r}: not a time of day", None, ExitStatus.USAGE)
        return cls(h1 * 60 + m1, h2 * 60 + m2)

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def inside(self, when: float) -> bool:
        return self.seconds_until_open(when) == 0

    def seconds_until_open(self, when: float) -> float:
        """0 inside the window, else the seconds until it opens."""
        moment = _dt.datetime.fromtimestamp(when)
        now = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
        start, end = self.start * 60, self.end * 60
        if start == end:
            return 0.0  # all day
        if start < end:
            inside = start <= now < end
        else:
            inside = now >= start or now < end
        if inside:
            return 0.0
        return (start - now) % 86400


@dataclass(frozen=True)
class Rate:
    amount: float
    unit: str  # "instances" or "bytes" (per second)

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(mb/s|mb|/s|instances/s)?\s*", (text or "").lower())
        if not match or float(match.group(1)) <= 0:
            raise DcmtoolsError(
                ErrorCode.BAD_VALUE,
                f"`rate` {text!r}: give instances per second (20, 20/s) or megabytes per second (5MB/s)",
                None,
                ExitStatus.USAGE,
            )
        amount = float(match.group(1))
        if match.group(2) in ("mb/s", "mb"):
            return cls(amount * 1e6, "bytes")
        return cls(amount, "instances")

    def __str__(self) -> str:
        return f"{self.amount / 1e6:g}MB/s" if self.unit == "bytes" else f"{self.amount:g}/s"


@dataclass
class Pacer:
    """Waits before each unit of work so that work happens inside the window and under the rate.

    The rate is kept over the run: the next study starts no earlier than
    ``start + done / rate``, where ``done`` counts the instances (or bytes) of
    the studies already started (instances: counted when a study starts, from
    the inventory; bytes: when it ends, as they are known only then).  Time
    spent outside the window does not count as credit."""

    window: Window | None = None
    rate: Rate | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    on_pause: Callable[[float], None] | None = None
    paused: float = field(default=0.0, init=False)  # seconds spent waiting for the window
    _origin: float | None = field(default=None, init=False, repr=False)
    _done: float = field(default=0.0, init=False, repr=False)

    def wait(self, instances: int = 0) -> None:
        """Before a unit of work of ``instances`` instances (when known)."""
        self._wait_window()
        if self.rate is None:
            return
        now = self.clock()
        if self._origin is None:
            self._origin = now
        due = self._origin + self._done / self.rate.amount
        if due > now:
            self.sleep(due - now)
            if self.window is not None and not self.window.inside(self.clock()):
                self._wait_window()
                self._origin = self.clock() - self._done / self.rate.amount
        if self.rate.unit == "instances":
            self._done += max(instances, 1)

    def account(self, instances: int = 0, size: int = 0) -> None:
        """After a unit of work: what it moved (bytes count here)."""
        if self.rate is not None and self.rate.unit == "bytes":
            self._done += size

    def _wait_window(self) -> None:
        if self.window is None:
            return
        while True:
            left = self.window.seconds_until_open(self.clock())
            if left <= 0:
                return
            if self.on_pause is not None:
                self.on_pause(left)
            self.paused += left
            self.sleep(left)
            # The rate's credit does not build up while the archive rests.
            if self._origin is not None and self.rate is not None:
                self._origin = self.clock() - self._done / self.rate.amount
