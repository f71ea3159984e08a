"""FHIR date values as ranges, and each prefix against ranges and instants (no service needed)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from record_service.search_dates import (EARLIEST, LATEST, PREFIXES, condition, point_condition, split_prefix,
                                         value_range)


def _us(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return round(moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp() * 1_000_000)


@pytest.mark.parametrize("value,first,last", [
    ("2025", "2025-01-01T00:00:00", "2025-12-31T23:59:59.999999"),
    ("2024-02", "2024-02-01T00:00:00", "2024-02-29T23:59:59.999999"),
    ("2025-12", "2025-12-01T00:00:00", "2025-12-31T23:59:59.999999"),
    ("2025-06-12", "2025-06-12T00:00:00", "2025-06-12T23:59:59.999999"),
    ("2025-06-12T10:00", "2025-06-12T10:00:00", "2025-06-12T10:00:59.999999"),
    ("2025-06-12T10:00Z", "2025-06-12T10:00:00", "2025-06-12T10:00:59.999999"),
    ("2025-06-12T10:00:05+02:00", "2025-06-12T08:00:05", "2025-06-12T08:00:05.999999"),
    ("2025-06-12T10:00:05-03:30", "2025-06-12T13:30:05", "2025-06-12T13:30:05.999999"),
    ("2025-06-12T10:00:05.5Z", "2025-06-12T10:00:05.500000", "2025-06-12T10:00:05.599999"),
    ("2025-06-12T10:00:05.123456789Z", "2025-06-12T10:00:05.123456", "2025-06-12T10:00:05.123456"),
])
def test_a_value_covers_its_precision(value, first, last):
    assert value_range(value) == (_us(first), _us(last))


def test_the_last_year_is_open_ended():
    assert value_range("9999")[1] == LATEST


@pytest.mark.parametrize("value", ["", "25", "2025-1", "2025-13", "2025-02-30", "2025-06-12T10", "2025-06-12T24:00",
                                   "2025-06-12T10:00+15:00", "2025-06-12 10:00", "0000", "\uff12\uff10\uff12\uff15",
                                   "2025-06-12T10:00:00+0200"])
def test_malformed_values_are_none(value):
    assert value_range(value) is None


def test_prefixes():
    assert split_prefix("ge2025") == ("ge", "2025") and split_prefix("2025") == ("eq", "2025")
    assert split_prefix("xx2025") == ("xx", "2025")  # the caller refuses what is not in PREFIXES


def _matches(prefix: str, search: str, target: tuple[int, int]) -> bool:
    """Whether the target range matches: the condition's SQL run by SQLite on a one-row table."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (low INTEGER, high INTEGER)")
    db.execute("INSERT INTO t VALUES (?, ?)", target)
    sql, params = condition(prefix, value_range(search), "low", "high", now=_us("2026-01-01T00:00:00"))
    return bool(db.execute(f"SELECT COUNT(*) FROM t WHERE {sql}", params).fetchone()[0])


JANUARY = (_us("2025-01-10T00:00:00"), _us("2025-01-20T23:59:59.999999"))
OPEN_END = (_us("2025-06-01T00:00:00"), LATEST)
OPEN_START = (EARLIEST, _us("2024-12-31T23:59:59.999999"))


@pytest.mark.parametrize("prefix,search,target,expected", [
    ("eq", "2025-01", JANUARY, True), ("eq", "2025-01-15", JANUARY, False), ("ne", "2025-01-15", JANUARY, True),
    ("ne", "2025", JANUARY, False), ("gt", "2025-01-15", JANUARY, True), ("gt", "2025-01", JANUARY, False),
    ("lt", "2025-01-15", JANUARY, True), ("lt", "2025-01-10", JANUARY, False), ("ge", "2025-01-20", JANUARY, True),
    ("ge", "2025-01-21", JANUARY, False), ("le", "2025-01-10", JANUARY, True), ("le", "2025-01-09", JANUARY, False),
    ("sa", "2025-01-09", JANUARY, True), ("sa", "2025-01-10", JANUARY, False), ("eb", "2025-01-21", JANUARY, True),
    ("eb", "2025-01-20", JANUARY, False), ("ap", "2025-01-22", JANUARY, True), ("ap", "2020", JANUARY, False),
    ("gt", "2099", OPEN_END, True), ("eq", "2025-06", OPEN_END, False), ("lt", "1900", OPEN_START, True),
    ("sa", "2024", OPEN_END, True), ("eb", "2025", OPEN_START, True), ("ge", "2025", OPEN_START, False),
])
def test_each_prefix_against_a_range(prefix, search, target, expected):
    assert _matches(prefix, search, target) is expected


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("search", ["2025", "2025-06-12", "2025-06-12T10:00:05Z"])
@pytest.mark.parametrize("instant", ["2024-12-31T23:59:59.999999", "2025-01-01T00:00:00", "2025-06-12T10:00:05",
                                     "2025-06-12T10:00:05.999999", "2025-12-31T23:59:59.999999", "2026-01-01T00:00:00"])
def test_an_instant_gets_the_range_answer(prefix, search, instant):
    """point_condition (the index-friendly form used on documents.date_us) agrees with the range form."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (at INTEGER)")
    db.execute("INSERT INTO t VALUES (?)", (_us(instant),))
    now = _us("2026-01-01T00:00:00")
    as_point = point_condition(prefix, value_range(search), "at", now)
    as_range = condition(prefix, value_range(search), "at", "at", now)
    count = "SELECT COUNT(*) FROM t WHERE "
    assert db.execute(count + as_point[0], as_point[1]).fetchone() == \
        db.execute(count + as_range[0], as_range[1]).fetchone()
