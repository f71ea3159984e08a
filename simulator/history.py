"""The record's history at the replay window's start: what corpus.parquet holds, and where reads aim.

Counts, not rows: a table of documents deposited per day and sector (the seven professional
sectors and the patients' own uploads), from ``corpus.history_start`` up to the window's start,
at the scenario's scale:

- inside the simulated period, the engine's drawn deposits (``Traffic.counts``, minute by minute,
  so the history matches monthly.csv exactly for the months before the window);
- before the period, Poisson draws of the production model's expected deposits
  (:func:`simulator.production.deposits_per_day`, x scale x (1 + uplift)) and of the patients'
  expected uploads (:func:`simulator.patients.expected_activity`,
  ``patients.uploads_per_active_user_per_year``); no event (strike, outage) is applied there.

The documents the window's operations need are *taken* from that table (:meth:`History.take`),
so they are counted in it, never added to it; the rest is turned into rows only when
corpus.parquet is written (:meth:`History.rest`), in a random order, chunk by chunk.

Reads aim by age (:func:`read_ages`): a lognormal age (``corpus.read_age``, its median an
assumption with a range) cut at ``max_days`` and at the history's start, so every read targets a
document deposited before the window opened, hence before the read.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from segur.errors import InputError
from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.engine import OPERATIONS, Traffic
from simulator.patients import expected_activity
from simulator.production import deposits_per_day, volume
from simulator.profiles import intraday
from simulator.scenario import PROFESSIONAL_SECTORS, SECTORS, ReadAge, Scenario

PATIENT = SECTORS.index("patient")
PROFESSIONAL_POOL = np.arange(len(PROFESSIONAL_SECTORS))
PATIENT_POOL = np.array([PATIENT])
_DAY_S = 86_400.0


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.frompyfunc(math.erf, 1, 1)(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)).astype(np.float64))


class AgeLaw:
    """The lognormal age of a document at its read (seconds), cut at ``max_days`` and at a per-read limit."""

    def __init__(self, law: ReadAge):
        self.law = law
        self._mu, self._sigma = math.log(law.median_days * _DAY_S), law.sigma
        self._log_age = np.linspace(0.0, math.log(law.max_days * _DAY_S), 8192)  # 1 s .. max_days
        self._cdf = _normal_cdf((self._log_age - self._mu) / self._sigma)

    def cdf(self, age_s: np.ndarray) -> np.ndarray:
        """P(age <= age_s) of the law cut at max_days only (for tests and the docs)."""
        age = np.clip(np.asarray(age_s, dtype=np.float64), 1.0, self.law.max_days * _DAY_S)
        return (np.interp(np.log(age), self._log_age, self._cdf) - self._cdf[0]) / (self._cdf[-1] - self._cdf[0])

    def draw(self, rng: np.random.Generator, limit_s: np.ndarray) -> np.ndarray:
        """Ages in seconds, each at most ``limit_s`` (and max_days): inverse CDF on a fine log grid."""
        limit = np.clip(np.asarray(limit_s, dtype=np.float64), 1.0, self.law.max_days * _DAY_S)
        top = np.interp(np.log(limit), self._log_age, self._cdf)
        u = self._cdf[0] + rng.random(limit.size) * (top - self._cdf[0])
        return np.minimum(np.exp(np.interp(u, self._cdf, self._log_age)), limit)


class History:
    """Documents deposited per day (from ``corpus.history_start`` to the window's day) and sector, at the scale.

    Day ``c`` starts ``day_start_s[c]`` seconds from the window's start (negative); the last day
    stops at the window's start. ``drawn`` is the table as drawn, ``remaining`` what is left once
    the window's needed documents are taken.
    """

    def __init__(self, traffic: Traffic, window_start_minute: int, window_start: dt.datetime,
                 rng: np.random.Generator):
        scenario: Scenario = traffic.scenario
        calendar = traffic.calendar
        self.scenario, self.rng = scenario, rng
        start = scenario.corpus.history_start
        if start > window_start.date():
            raise InputError(f"corpus.history_start: {start} is after the replay window's start {window_start:%Y-%m-%d %H:%M}; "
                             "the history must begin on or before the window's day")
        self.start = start
        days = (window_start.date() - start).days + 1
        origin = dt.datetime.combine(start, dt.time())
        self.day_start_s = (origin - window_start).total_seconds() + np.arange(days) * _DAY_S
        self.drawn = np.zeros((days, len(SECTORS)), dtype=np.int64)
        self.pre_days = max(0, (calendar.start - start).days)  # days before the simulated period
        if self.pre_days:
            before = Calendar(start, calendar.start - dt.timedelta(days=1))
            for name, per_day in deposits_per_day(scenario, before, volume(scenario)).items():
                self.drawn[:self.pre_days, SECTORS.index(name)] = rng.poisson(per_day)
            uploads = expected_activity(scenario.patients, scenario.patients.uploads_per_active_user_per_year,
                                        volume(scenario), before)
            self.drawn[:self.pre_days, PATIENT] = rng.poisson(uploads.reshape(-1, MINUTES_PER_DAY).sum(axis=1))
        # inside the period: the drawn deposits, minute by minute, up to the window's start
        first = calendar.minute_index(dt.datetime.combine(max(start, calendar.start), dt.time()))
        minutes = traffic.counts[OPERATIONS.index("deposit"), :, first:window_start_minute]  # (sectors, minutes)
        self.minute_counts = minutes
        padded = np.zeros((len(SECTORS), (days - self.pre_days) * MINUTES_PER_DAY), dtype=np.int64)
        padded[:, :minutes.shape[1]] = minutes
        self.drawn[self.pre_days:] = padded.reshape(len(SECTORS), -1, MINUTES_PER_DAY).sum(axis=2).T
        self._minute_cumulative = np.concatenate([np.zeros((len(SECTORS), 1), np.int64), np.cumsum(minutes, axis=1)], axis=1)
        self._intraday_cdf = {}
        for index, name in enumerate(SECTORS):
            activity = scenario.patients.activity if name == "patient" else scenario.sectors[name].activity
            profile = intraday(activity)
            self._intraday_cdf[index] = np.cumsum(profile) / profile.sum()
        self.remaining = self.drawn.copy()
        self.ages = AgeLaw(scenario.corpus.read_age)

    # --- what it is ------------------------------------------------------------------------

    @property
    def documents(self) -> int:
        return int(self.drawn.sum())

    @property
    def history_start_s(self) -> float:
        """The history's start, in seconds from the window's start (negative)."""
        return float(self.day_start_s[0])

    def day_of(self, times_s: np.ndarray) -> np.ndarray:
        """The history day of each moment (seconds from the window's start, before it)."""
        return np.clip(((times_s - self.day_start_s[0]) // _DAY_S).astype(np.int64), 0, self.day_start_s.size - 1)

    def month_labels(self) -> np.ndarray:
        """``YYYY-MM`` of each history day."""
        days = np.datetime64(self.start, "D") + np.arange(self.day_start_s.size)
        return days.astype("datetime64[M]").astype(str)

    # --- aiming reads ---------------------------------------------------------------------

    def read_targets(self, read_offsets_s: np.ndarray) -> np.ndarray:
        """Creation moments (seconds from the window's start, < 0) of documents read at these offsets, by age."""
        limit = read_offsets_s - self.history_start_s
        created = read_offsets_s - self.ages.draw(self.rng, limit)
        return np.where(created < 0, created, np.nan)  # younger than the window: any moment of the last day

    def record_days(self, n: int, years: float) -> np.ndarray:
        """Days of ``n`` documents of a patient's record, as the history deposited them over the last ``years``."""
        first = max(0, self.day_start_s.size - int(math.ceil(years * 365.25)))
        weights = self.remaining[first:].sum(axis=1).astype(np.float64)
        if weights.sum() <= 0:
            weights = np.ones_like(weights)
        cdf = np.cumsum(weights) / weights.sum()
        return first + np.minimum(np.searchsorted(cdf, self.rng.random(n), side="right"), cdf.size - 1)

    def take(self, times_s: np.ndarray, pool: np.ndarray, days: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Take documents out of the history, one per entry: returns (sector, creation moment in seconds).

        Each is wanted at ``times_s`` (NaN: any moment of ``days``, or of the history's last day),
        from a sector of ``pool``, chosen in proportion to what that day still has. A day with
        nothing left of the pool hands the document to the nearest earlier day that has some (the
        nearest later one before the window when none is earlier): it is then drawn at that
        day's hours. Every document taken was deposited before the window opened.
        """
        times_s = np.asarray(times_s, dtype=np.float64)
        times_s = np.where(times_s < 0, times_s, np.nan)  # not before the window: any moment of the last day
        n = times_s.size
        if days is None:
            days = np.where(np.isnan(times_s), self.day_start_s.size - 1, self.day_of(np.nan_to_num(times_s, nan=-1.0)))
        days = np.asarray(days, dtype=np.int64).copy()
        keep_time = ~np.isnan(times_s)
        sectors = np.full(n, -1, dtype=np.int64)
        pending = np.arange(n)
        for _ in range(200):
            if pending.size == 0:
                break
            supply = self.remaining[:, pool]
            total = supply.sum(axis=1)
            if total.sum() < pending.size:
                raise InputError(f"the history holds too few documents ({int(total.sum())}) for the window's needs "
                                 f"({n}): set corpus.history_start earlier")
            wanted = days[pending]
            empty = total[wanted] == 0
            if empty.any():
                index = np.arange(total.size)
                earlier = np.maximum.accumulate(np.where(total > 0, index, -1))
                later = np.minimum.accumulate(np.where(total > 0, index, total.size)[::-1])[::-1]
                moved = wanted[empty]
                target = earlier[moved]
                target = np.where(target >= 0, target, later[moved])
                days[pending[empty]] = target
                keep_time[pending[empty]] = False
                wanted = days[pending]
            rows = supply[wanted].astype(np.float64)
            cumulative = np.cumsum(rows, axis=1)
            u = self.rng.random(pending.size) * cumulative[:, -1]
            choice = np.minimum((cumulative <= u[:, None]).sum(axis=1), pool.size - 1)
            chosen = pool[choice]
            # accept as many per (day, sector) as it has left, in a random order
            key = wanted * len(SECTORS) + chosen
            order = np.lexsort((self.rng.random(pending.size), key))
            sorted_key = key[order]
            starts = np.searchsorted(sorted_key, sorted_key, side="left")
            rank = np.arange(sorted_key.size) - starts
            accept_sorted = rank < self.remaining.reshape(-1)[sorted_key]
            accepted = order[accept_sorted]
            sectors[pending[accepted]] = chosen[accepted]
            np.subtract.at(self.remaining.reshape(-1), key[accepted], 1)
            pending = pending[np.setdiff1d(np.arange(pending.size), accepted, assume_unique=True)]
        else:
            raise AssertionError("taking documents from the history did not settle")
        times = np.where(keep_time, times_s, np.nan)
        redraw = np.isnan(times)
        times[redraw] = self.moments(days[redraw], sectors[redraw])
        return sectors, times

    def moments(self, days: np.ndarray, sectors: np.ndarray) -> np.ndarray:
        """A moment (seconds from the window's start) in each day, at the hours of its sector.

        Before the period: the sector's intraday profile; inside it: the minutes the engine drew
        the deposits in (so the last day stops at the window's start).
        """
        out = np.zeros(days.size, dtype=np.float64)
        jitter = self.rng.random(days.size) * 60.0
        for sector in np.unique(sectors):
            mine = sectors == sector
            before = mine & (days < self.pre_days)
            if before.any():
                minute = np.searchsorted(self._intraday_cdf[int(sector)], self.rng.random(int(before.sum())), side="right")
                out[before] = self.day_start_s[days[before]] + np.minimum(minute, MINUTES_PER_DAY - 1) * 60.0
            inside = mine & (days >= self.pre_days)
            if inside.any():
                cumulative = self._minute_cumulative[int(sector)]
                last = cumulative.size - 1
                low = np.minimum((days[inside] - self.pre_days) * MINUTES_PER_DAY, last)
                high = np.minimum(low + MINUTES_PER_DAY, last)
                u = cumulative[low] + self.rng.random(low.size) * (cumulative[high] - cumulative[low])
                minute = np.clip(np.searchsorted(cumulative, u, side="right") - 1, low, np.maximum(high - 1, low))
                out[inside] = self.day_start_s[self.pre_days] + minute * 60.0
        return np.minimum(out + jitter, -0.001)

    # --- the rest, for corpus.parquet -----------------------------------------------------------

    def rest_cells(self, limit: int | None = None) -> np.ndarray:
        """The documents left (not needed), as their (day x sectors + sector) cells, in a random order.

        ``limit``: at most that many, a uniform sample of them (multivariate hypergeometric over the
        cells, so a national history is never put in memory).
        """
        counts = self.remaining.reshape(-1)
        if limit is not None and limit < counts.sum():
            counts = self.rng.multivariate_hypergeometric(counts, int(limit), method="marginals")
        cells = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
        self.rng.shuffle(cells)
        return cells


def national_storage(scenario: Scenario, mean_bytes: dict[str, float], end: dt.date) -> list[dict]:
    """The national record at the end of each year, from ``corpus.history_start`` to ``end`` (cumulative).

    Expected national volumes (the production model at scale 1 x (1 + uplift), and the patients'
    expected uploads), no disruption applied: [{year, until, documents, bytes, by_sector: {sector:
    {documents, bytes}}}]. Bytes are documents x the modelled mean size of the sector's types.
    """
    start = scenario.corpus.history_start
    if end < start:
        return []
    calendar = Calendar(start, end)
    national = 1.0 + scenario.uplift
    per_day = {name: series for name, series in deposits_per_day(scenario, calendar, national).items()}
    per_day["patient"] = expected_activity(scenario.patients, scenario.patients.uploads_per_active_user_per_year,
                                           national, calendar).reshape(-1, MINUTES_PER_DAY).sum(axis=1)
    years = calendar.dates.astype("datetime64[Y]").astype(np.int64) + 1970
    out = []
    cumulative = {name: 0.0 for name in SECTORS}
    for year in range(start.year, end.year + 1):
        mine = years == year
        by_sector = {}
        for name in SECTORS:
            cumulative[name] += float(per_day[name][mine].sum())
            by_sector[name] = {"documents": round(cumulative[name]), "bytes": round(cumulative[name] * mean_bytes[name])}
        out.append({"year": year, "until": min(dt.date(year, 12, 31), end).isoformat(),
                    "documents": sum(v["documents"] for v in by_sector.values()),
                    "bytes": sum(v["bytes"] for v in by_sector.values()), "by_sector": by_sector})
    return out
