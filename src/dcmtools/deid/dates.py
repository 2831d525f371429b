"""Shifting DA and DT values by whole days, keeping their exact format.

Only the date part moves; the time of day, the fraction and the UTC offset
(``&ZZXX``) stay as they were, so TM values need no change at all.  Partial
values move by what they can express: a year-month by whole months, a year by
whole years (the offset rounded).  A value that is not a date raises
``ValueError``: the caller decides what replaces it.
"""

from __future__ import annotations

import datetime as _dt
import re

_DA = re.compile(r"^(\d{4})(\.?)(\d{2})\2(\d{2})$")  # YYYYMMDD, or the old YYYY.MM.DD
# YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]: the date groups, then the rest kept as is.
_DT = re.compile(
    r"^(\d{4})(?:(\d{2})(?:(\d{2}))?)?((?<=\d{8})\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?[+-]\d{4}|(?<=\d{8})\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?|[+-]\d{4}|)$"
)


def _shift_ymd(year: int, month: int, day: int, days: int) -> tuple[int, int, int]:
    try:
        moved = _dt.date(year, month, day) + _dt.timedelta(days=days)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid date: {year:04d}-{month:02d}-{day:02d}") from exc
    return moved.year, moved.month, moved.day


def _shift_months(year: int, month: int, days: int) -> tuple[int, int]:
    if not 1 <= month <= 12:
        raise ValueError(f"not a valid month: {month}")
    total = year * 12 + (month - 1) + round(days / 30.436875)
    return total // 12, total % 12 + 1


def _check_year(year: int) -> int:
    if not 1 <= year <= 9999:
        raise ValueError("the shifted year is out of range")
    return year


def shift_da(value: str, days: int) -> str:
    """One DA value (or a ``A-B`` range) moved by ``days``."""
    text = value.strip()
    if not text:
        return value
    if "-" in text:
        return "-".join(shift_da(part, days) if part else part for part in text.split("-", 1))
    match = _DA.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a DA date (YYYYMMDD)")
    sep = match.group(2)
    year, month, day = _shift_ymd(int(match.group(1)), int(match.group(3)), int(match.group(4)), days)
    return f"{_check_year(year):04d}{sep}{month:02d}{sep}{day:02d}"


def shift_dt(value: str, days: int) -> str:
    """One DT value moved by ``days``; time, fraction and UTC offset unchanged."""
    text = value.rstrip(" \0")
    if not text.strip():
        return value
    match = _DT.match(text)
    if match is None:
        if "-" in text:  # a range (query form): both ends move
            left, right = text.split("-", 1)
            if _DT.match(left or "0000") and _DT.match(right or "0000"):
                return "-".join(shift_dt(part, days) if part else part for part in (left, right))
        raise ValueError(f"{value!r} is not a DT date-time")
    year_s, month_s, day_s, rest = match.group(1), match.group(2), match.group(3), match.group(4)
    if month_s is None:
        year = int(year_s) + round(days / 365.2425)
        return f"{_check_year(year):04d}{rest}"
    if day_s is None:
        year, month = _shift_months(int(year_s), int(month_s), days)
        return f"{_check_year(year):04d}{month:02d}{rest}"
    year, month, day = _shift_ymd(int(year_s), int(month_s), int(day_s), days)
    return f"{_check_year(year):04d}{month:02d}{day:02d}{rest}"
