"""A back-load: producers going live send their document history, at night, at a fixed pace.

(When a hospital or a lab connects to the DMP it often sends months of past documents too;
editors pace it and run it at night so that it does not compete with the day's traffic.)

The sending starts on ``event.start`` at ``night_start_hour`` and goes on only during night
minutes, night after night, at ``per_minute x volume`` documents a minute until the history is
sent. It is deterministic: the fractional part of the pace is carried from minute to minute
(the j-th night minute ends with ``floor(j x pace)`` documents sent), so the integer counts sum
exactly. Nothing is lost: what was sent before the period or is still to send at its end is
counted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.scenario import BackLoad


@dataclass
class BackLoadOutcome:
    documents: int = 0       # history to send at this scale
    before_period: int = 0   # sent before the period's first minute
    delivered: int = 0       # sent inside the period
    pending_at_end: int = 0  # still to send when the period ends


def _night_minutes(event: BackLoad) -> int:
    """Length in minutes of one night: from night_start_hour to night_end_hour, past midnight if needed.

    Equal hours mean the whole day.
    """
    hours = (event.night_end_hour - event.night_start_hour) % 24
    return (hours or 24) * 60


def _sent_after(j: np.ndarray | int, pace: float, documents: int) -> np.ndarray:
    """Documents sent after the first ``j`` night minutes (cumulative, int64, capped at ``documents``)."""
    return np.minimum(np.floor(np.asarray(j, dtype=np.float64) * pace), documents).astype(np.int64)


def _night_minutes_before(minute: int, first: int, night: int) -> int:
    """Night minutes of the back-load in [first, minute): whole days times a night, plus a partial one."""
    if minute <= first:
        return 0
    days, rest = divmod(minute - first, MINUTES_PER_DAY)
    return days * night + min(rest, night)


def back_load(event: BackLoad, volume: float, calendar: Calendar) -> tuple[np.ndarray, BackLoadOutcome]:
    """Documents of history sent per minute, int64, shape (calendar.minutes,), and the accounting.

    ``volume`` is the scenario's scale x (1 + uplift); it scales both the history and the pace.
    ``documents == before_period + delivered + pending_at_end`` exactly.
    """
    sent = np.zeros(calendar.minutes, dtype=np.int64)
    documents = int(round(event.documents * volume))
    outcome = BackLoadOutcome(documents=documents)
    pace = event.per_minute * volume
    if documents <= 0 or pace <= 0.0:
        outcome.pending_at_end = documents
        return sent, outcome

    first = calendar.minute_index(dt.datetime.combine(event.start, dt.time(event.night_start_hour)))
    night = _night_minutes(event)
    # the night starts at ``first`` each day and is one block (it may run past midnight)
    since = np.arange(calendar.minutes, dtype=np.int64) - first
    days, rest = np.divmod(since, MINUTES_PER_DAY)
    sending = (since >= 0) & (rest < night)
    j = days[sending] * night + rest[sending]  # index of each night minute since the start
    sent[sending] = _sent_after(j + 1, pace, documents) - _sent_after(j, pace, documents)

    before = int(_sent_after(_night_minutes_before(0, first, night), pace, documents))
    by_end = int(_sent_after(_night_minutes_before(calendar.minutes, first, night), pace, documents))
    outcome.before_period = before
    outcome.delivered = by_end - before
    outcome.pending_at_end = documents - by_end
    return sent, outcome
