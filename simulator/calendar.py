"""The simulated period as days and minutes, with what a French calendar says about each day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np

MINUTES_PER_DAY = 1440


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def french_public_holidays(year: int) -> set[dt.date]:
    """The eleven national public holidays of metropolitan France."""
    easter = _easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    movable = [easter + dt.timedelta(days=1), easter + dt.timedelta(days=39), easter + dt.timedelta(days=50)]
    return {dt.date(year, m, d) for m, d in fixed} | set(movable)


@dataclass(frozen=True)
class Calendar:
    """Whole days from ``start`` to ``end`` inclusive; minute ``i`` is ``start + i minutes``."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def minutes(self) -> int:
        return self.days * MINUTES_PER_DAY

    @cached_property
    def dates(self) -> np.ndarray:
        return np.arange(np.datetime64(self.start, "D"), np.datetime64(self.end, "D") + 1)

    @cached_property
    def weekday(self) -> np.ndarray:
        """0 = Monday .. 6 = Sunday, per day."""
        return ((self.dates.astype(np.int64) + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday

    @cached_property
    def month_index(self) -> np.ndarray:
        """0 = January .. 11 = December, per day."""
        return (self.dates.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int8)

    @cached_property
    def month_labels(self) -> np.ndarray:
        """``YYYY-MM`` per day."""
        return self.dates.astype("datetime64[M]").astype(str)

    @cached_property
    def holiday(self) -> np.ndarray:
        years = range(self.start.year, self.end.year + 1)
        holidays = set().union(*(french_public_holidays(y) for y in years))
        marks = np.array([np.datetime64(d, "D") for d in sorted(holidays)])
        return np.isin(self.dates, marks)

    @cached_property
    def christmas_week(self) -> np.ndarray:
        month_day = self.dates - self.dates.astype("datetime64[M]").astype("datetime64[D]")
        day = month_day.astype(np.int64) + 1
        return ((self.month_index == 11) & (day >= 24)) | ((self.month_index == 0) & (day == 1))

    @cached_property
    def day_of_year(self) -> np.ndarray:
        """Fractional position in the year, 0 .. 1, per day."""
        year_start = self.dates.astype("datetime64[Y]").astype("datetime64[D]")
        return (self.dates - year_start).astype(np.float64) / 365.25

    def day_index(self, day: dt.date) -> int:
        """Index of a date (may fall outside the period: negative or >= days)."""
        return (day - self.start).days

    def minute_index(self, moment: dt.datetime) -> int:
        return int((moment - dt.datetime.combine(self.start, dt.time())).total_seconds() // 60)

    def moment(self, minute: int) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time()) + dt.timedelta(minutes=int(minute))

    def years_since(self, reference: dt.date) -> np.ndarray:
        """Years between each day and ``reference`` (negative before it)."""
        return (self.dates - np.datetime64(reference, "D")).astype(np.float64) / 365.25
