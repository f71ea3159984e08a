"""FHIR R4 date search (search.html#date, #prefix): a date value is a range, compared by prefix.

A value at any precision (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DDThh:mm``, ``…:ss``, ``…:ss.fff``,
each time with ``Z``, ``±hh:mm`` or no zone, read as UTC) stands for every microsecond it covers:
``2026-06`` is [2026-06-01T00:00:00.000000Z, 2026-06-30T23:59:59.999999Z]. Ranges are microseconds since the
epoch, both ends inclusive; an open end is :data:`EARLIEST` or :data:`LATEST`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

EARLIEST = -(2 ** 62)  # an open start (fits BIGINT and SQLite's integers)
LATEST = 2 ** 62  # an open end
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_VALUE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
                    r"(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?")
_US = 1_000_000
_AP_SHARE = 10  # ap: within 10 % of the gap between now and the value (search.html#prefix)


def value_range(text: str) -> tuple[int, int] | None:
    """[first, last] microsecond covered by a FHIR date/dateTime/instant value, or None if it is not one."""
    match = _VALUE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        start = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                         int(second or 0), int((fraction or "0")[:6].ljust(6, "0")), tzinfo=_zone(zone))
        first = _microseconds(start)
        if hour is not None:
            width = (60 if second is None else 1) * _US if fraction is None else max(1, 10 ** (6 - len(fraction)))
            return first, first + width - 1
        return first, _last(start, month is None, day is None)
    except (ValueError, OverflowError):
        return None


def _zone(zone: str | None) -> timezone:
    if zone is None or zone == "Z":
        return timezone.utc
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError("zone out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _last(start: datetime, whole_year: bool, whole_month: bool) -> int:
    """The last microsecond of the year, month or day ``start`` opens (:data:`LATEST` past year 9999)."""
    try:
        if whole_year:
            following = start.replace(year=start.year + 1)
        elif whole_month:
            following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        else:
            following = start + timedelta(days=1)
    except (ValueError, OverflowError):
        return LATEST
    return _microseconds(following) - 1


def _microseconds(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def now_us() -> int:
    return _microseconds(datetime.now(timezone.utc))


def split_prefix(value: str) -> tuple[str, str]:
    """(prefix, date text) of a search value; no prefix is ``eq``. A prefix must be one of :data:`PREFIXES`."""
    head = value[:2]
    if head.isalpha() and head.isascii():
        return head, value[2:]
    return "eq", value


def condition(prefix: str, search: tuple[int, int], low: str, high: str, now: int) -> tuple[str, tuple]:
    """SQL (and its parameters) true when the target range [``low``, ``high``] (two SQL expressions)
    matches the search range [first, last] under ``prefix``, as FHIR R4 defines each prefix for ranges:
    eq: the search range contains the target; ne: it does not; gt: the target ends after the search range;
    lt: it starts before it; ge / le: gt / lt, or overlapping the value itself (HAPI reads them the same
    way); sa: the target starts after the search range; eb: it ends before it; ap: the target overlaps
    the search range widened by a tenth of its distance from now."""
    first, last = search
    contained = f"({low} >= ? AND {high} <= ?)"
    if prefix == "eq":
        return contained, (first, last)
    if prefix == "ne":
        return f"NOT {contained}", (first, last)
    if prefix == "gt":
        return f"{high} > ?", (last,)
    if prefix == "lt":
        return f"{low} < ?", (first,)
    if prefix == "ge":  # the range from the value's start up overlaps the target
        return f"{high} >= ?", (first,)
    if prefix == "le":  # the range up to the value's end overlaps the target
        return f"{low} <= ?", (last,)
    if prefix == "sa":
        return f"{low} > ?", (last,)
    if prefix == "eb":
        return f"{high} < ?", (first,)
    margin = max(abs(now - first), abs(now - last)) // _AP_SHARE  # ap: overlaps the value widened by 10 %
    return f"({low} <= ? AND {high} >= ?)", (min(LATEST, last + margin), max(EARLIEST, first - margin))


def point_condition(prefix: str, search: tuple[int, int], column: str, now: int) -> tuple[str, tuple]:
    """:func:`condition` for a target that is one instant (``column``), in the plain comparisons an index
    on ``column`` serves: the same answers as the range forms with low = high."""
    first, last = search
    if prefix in ("gt", "sa"):
        return f"{column} > ?", (last,)
    if prefix in ("lt", "eb"):
        return f"{column} < ?", (first,)
    if prefix == "ge":
        return f"{column} >= ?", (first,)
    if prefix == "le":
        return f"{column} <= ?", (last,)
    sql, params = condition(prefix, search, column, column, now)
    return sql, params
