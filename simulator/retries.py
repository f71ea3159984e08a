"""People retrying what the platform refused: a few tries with back-off, then they give up.

(During an outage a professional's software or a patient's app retries a refused read a few
times, waiting longer each time, and then gives up; the tries that come after the recovery add
to the load when the platform comes back.)

Every request of the outage minutes is refused and taken out of the series. Each one is then
followed on its own, vectorised: its original time is its minute plus a uniform offset in the
minute, attempt k (k = 0 .. max_attempts - 1) waits ``min(first_delay_s x multiplier**k,
max_delay_s) x (1 + jitter x u)`` seconds (u uniform in [-1, 1]) after the previous one. The
first attempt at or after the end of the outage succeeds and is added back at its minute;
if every attempt falls inside the outage the person gives up. Nothing is lost:
``refused == retried + abandoned + pending_at_end``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.scenario import PeopleRetry

_CHUNK = 1 << 20  # requests followed at once (bounds the memory of a long outage)


@dataclass
class PeopleRetryOutcome:
    refused: int = 0         # requests refused while the platform was down
    retried: int = 0         # of them, sent again successfully inside the period (added back to the series)
    abandoned: int = 0       # gave up after max_attempts more tries, all refused
    pending_at_end: int = 0  # their successful try would fall after the period's end


def _chunks(counts: np.ndarray) -> list[slice]:
    """Consecutive minute ranges of ``counts`` holding about ``_CHUNK`` requests each (one minute at least)."""
    cumulative = np.cumsum(counts)
    slices, begin = [], 0
    while begin < counts.size:
        already = cumulative[begin - 1] if begin else 0
        end = int(np.searchsorted(cumulative, already + _CHUNK, side="right"))
        end = max(end, begin + 1)
        slices.append(slice(begin, end))
        begin = end
    return slices


def _success_seconds(first_minute: int, counts: np.ndarray, down_end_s: float, policy: PeopleRetry,
                     rng: np.random.Generator) -> np.ndarray:
    """Second of the successful try of each request, shape (counts.sum(),); NaN for those who gave up.

    ``counts[i]`` requests were refused in minute ``first_minute + i``.
    """
    minutes = np.repeat(np.arange(first_minute, first_minute + counts.size, dtype=np.float64), counts)
    at = minutes * 60.0 + rng.uniform(0.0, 60.0, minutes.size)
    success = np.full(minutes.size, np.nan)
    waiting = np.arange(minutes.size)
    for attempt in range(policy.max_attempts):
        if waiting.size == 0:
            break
        base = min(policy.first_delay_s * policy.multiplier ** attempt, policy.max_delay_s)
        at = at + base * (1.0 + policy.jitter * rng.uniform(-1.0, 1.0, waiting.size))
        through = at >= down_end_s
        success[waiting[through]] = at[through]
        waiting, at = waiting[~through], at[~through]
    return success


def retry_refused(series: np.ndarray, down_start: int, down_end: int, policy: PeopleRetry,
                  rng: np.random.Generator) -> PeopleRetryOutcome:
    """Refuse the requests of minutes [down_start, down_end) of ``series`` and add back their successful retries.

    ``series`` is one per-minute count row, int64, shape (minutes,), changed in place. The
    outage may begin before the series or end after it (minute indices of the same axis).
    Afterwards ``series.sum() == before - refused + retried``.
    """
    outcome = PeopleRetryOutcome()
    lo, hi = max(down_start, 0), min(down_end, series.size)
    if hi <= lo:
        return outcome
    counts = series[lo:hi].copy()
    outcome.refused = int(counts.sum())
    series[lo:hi] = 0
    if outcome.refused == 0:
        return outcome

    down_end_s = down_end * 60.0
    for part in _chunks(counts):
        success = _success_seconds(lo + part.start, counts[part], down_end_s, policy, rng)
        through = success[~np.isnan(success)]
        outcome.abandoned += int(success.size - through.size)
        minute = np.floor(through / 60.0).astype(np.int64)
        # a try at or after down_end * 60 s lands in a minute >= down_end: never refused again
        inside = minute < series.size
        series += np.bincount(minute[inside], minlength=series.size)[:series.size].astype(series.dtype)
        outcome.retried += int(inside.sum())
        outcome.pending_at_end += int((~inside).sum())
    return outcome
