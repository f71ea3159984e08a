"""A back-load: the history goes out at night, at its pace, and every document is counted."""

import datetime as dt

import numpy as np
import pytest

from simulator.backload import back_load
from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.scenario import BackLoad

CALENDAR = Calendar(dt.date(2025, 6, 1), dt.date(2025, 6, 14))


def _event(start, documents=200_000.0, per_minute=7.3, night_start_hour=20, night_end_hour=6):
    return BackLoad(kind="back_load", sector="hospital", start=start, documents=documents, per_minute=per_minute,
                    night_start_hour=night_start_hour, night_end_hour=night_end_hour)


def _minute_of_day(minutes):
    return np.asarray(minutes) % MINUTES_PER_DAY


@pytest.mark.parametrize("volume", [1.0, 0.37, 2.5])
@pytest.mark.parametrize("hours", [(20, 6), (1, 5), (22, 22)])
@pytest.mark.parametrize("start, where", [
    (dt.date(2025, 6, 3), "inside"),
    (dt.date(2025, 5, 20), "straddles the start"),
    (dt.date(2025, 6, 12), "straddles the end"),
    (dt.date(2025, 1, 1), "wholly before"),
    (dt.date(2025, 7, 1), "wholly after"),
])
def test_every_document_is_counted_once(volume, hours, start, where):
    event = _event(start, night_start_hour=hours[0], night_end_hour=hours[1])
    sent, outcome = back_load(event, volume, CALENDAR)
    assert sent.shape == (CALENDAR.minutes,) and sent.dtype == np.int64 and sent.min() >= 0
    assert outcome.documents == round(200_000 * volume)
    assert outcome.documents == outcome.before_period + outcome.delivered + outcome.pending_at_end
    assert sent.sum() == outcome.delivered
    assert min(outcome.before_period, outcome.delivered, outcome.pending_at_end) >= 0
    if where == "wholly before":
        assert outcome.before_period == outcome.documents and not sent.any()
    elif where == "wholly after":
        assert outcome.pending_at_end == outcome.documents and not sent.any()
    elif where == "straddles the start":
        assert outcome.before_period > 0
    else:
        assert outcome.before_period == 0 and outcome.delivered > 0


def test_sends_only_at_night_and_at_its_pace():
    event = _event(dt.date(2025, 6, 3), documents=30_000.0, per_minute=7.3)
    sent, outcome = back_load(event, 1.0, CALENDAR)
    busy = np.flatnonzero(sent)
    first = CALENDAR.minute_index(dt.datetime(2025, 6, 3, 20))
    assert busy[0] == first                                           # starts at night_start_hour
    of_day = _minute_of_day(busy)
    assert ((of_day >= 20 * 60) | (of_day < 6 * 60)).all()            # only 20:00-06:00
    of_all = _minute_of_day(np.arange(CALENDAR.minutes))
    night = (of_all >= 20 * 60) | (of_all < 6 * 60)
    used = np.flatnonzero(night & (np.arange(CALENDAR.minutes) >= first))[:int(np.ceil(30_000 / 7.3))]
    assert set(np.unique(sent[used[:-1]])) <= {7, 8}                  # the pace, fraction carried
    k = np.arange(1, used.size)
    np.testing.assert_array_equal(np.cumsum(sent[used])[:-1], np.floor(k * 7.3).astype(np.int64))
    assert sent.sum() == 30_000 and outcome.pending_at_end == 0 and outcome.delivered == 30_000
    assert sent[used[-1] + 1:].sum() == 0                             # done: nothing after the history is sent
    assert used[-1] > first + 6 * MINUTES_PER_DAY                        # 4110 night minutes: seven nights


def test_a_night_that_does_not_wrap_and_a_whole_day():
    sent, _ = back_load(_event(dt.date(2025, 6, 3), per_minute=1.0, night_start_hour=1, night_end_hour=5), 1.0,
                        CALENDAR)
    of_day = _minute_of_day(np.flatnonzero(sent))
    assert of_day.min() == 60 and of_day.max() == 5 * 60 - 1
    sent, _ = back_load(_event(dt.date(2025, 6, 3), per_minute=1.0, night_start_hour=9, night_end_hour=9), 1.0,
                        CALENDAR)
    first = CALENDAR.minute_index(dt.datetime(2025, 6, 3, 9))
    assert sent[:first].sum() == 0 and (sent[first:] == 1).all()     # all day, every minute


def test_what_was_sent_before_the_period_follows_the_pace():
    # 2 nights of 10 hours before the period starts on 1 June 00:00, plus 4 hours of the third night
    event = _event(dt.date(2025, 5, 29), documents=1e7, per_minute=2.5)
    sent, outcome = back_load(event, 1.0, CALENDAR)
    assert outcome.before_period == int(np.floor((2 * 600 + 240) * 2.5))
    assert sent[:6 * 60].sum() == int(np.floor((2 * 600 + 600) * 2.5)) - outcome.before_period
    assert sent[6 * 60:20 * 60].sum() == 0


def test_a_fractional_pace_below_one_sends_every_few_minutes():
    sent, outcome = back_load(_event(dt.date(2025, 6, 3), documents=100.0, per_minute=0.25), 1.0, CALENDAR)
    first = CALENDAR.minute_index(dt.datetime(2025, 6, 3, 20))
    np.testing.assert_array_equal(np.flatnonzero(sent), first + 3 + 4 * np.arange(100))
    assert outcome.delivered == 100
