"""A notification campaign: every responder's session is placed once, a few hours after the send."""

import datetime as dt

import numpy as np
import pytest

from simulator.calendar import Calendar
from simulator.campaign import campaign_sessions
from simulator.scenario import Campaign, ResponseCurve

CALENDAR = Calendar(dt.date(2025, 3, 1), dt.date(2025, 3, 10))


def _campaign(date, notifications=200_000.0, share=0.2, median_hours=3.0, sigma=1.0, max_days=7,
              send_hour=10, send_hours=2):
    return Campaign(kind="campaign", date=date, notifications=notifications, send_hour=send_hour,
                    send_hours=send_hours,
                    response_curve=ResponseCurve(share=share, median_hours=median_hours, sigma=sigma,
                                                 max_days=max_days))


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
@pytest.mark.parametrize("date, where", [
    (dt.date(2025, 3, 3), "inside"),
    (dt.date(2025, 2, 27), "straddles the start"),
    (dt.date(2025, 3, 9), "straddles the end"),
    (dt.date(2025, 1, 10), "wholly before"),
    (dt.date(2025, 4, 1), "wholly after"),
])
def test_every_responder_is_counted_once(seed, date, where):
    event = _campaign(date, max_days=5)  # 3 March + 5 days ends before 10 March
    sessions, outcome = campaign_sessions(event, 0.37, CALENDAR, np.random.default_rng(seed))
    assert sessions.shape == (CALENDAR.minutes,) and sessions.dtype == np.int64 and sessions.min() >= 0
    assert outcome.notified == round(200_000 * 0.37)
    assert 0 < outcome.responders <= outcome.notified
    assert outcome.responders == outcome.in_period + outcome.before_period + outcome.after_period
    assert sessions.sum() == outcome.in_period
    if where == "inside":
        assert outcome.in_period == outcome.responders
    elif where == "wholly before":
        assert outcome.before_period == outcome.responders and not sessions.any()
    elif where == "wholly after":
        assert outcome.after_period == outcome.responders and not sessions.any()
    else:
        assert outcome.in_period > 0 and outcome.before_period + outcome.after_period > 0


def test_responders_are_a_binomial_share_of_the_notified():
    event = _campaign(dt.date(2025, 3, 3), notifications=1_000_000.0, share=0.15)
    _, outcome = campaign_sessions(event, 1.0, CALENDAR, np.random.default_rng(3))
    assert outcome.notified == 1_000_000
    assert abs(outcome.responders - 150_000) < 5 * np.sqrt(1_000_000 * 0.15 * 0.85)


def test_sessions_peak_a_few_hours_after_the_send():
    event = _campaign(dt.date(2025, 3, 3), notifications=1_000_000.0, median_hours=3.0, sigma=0.8)
    sessions, outcome = campaign_sessions(event, 1.0, CALENDAR, np.random.default_rng(11))
    send = CALENDAR.minute_index(dt.datetime(2025, 3, 3, 10))
    assert sessions[:send].sum() == 0                            # nobody answers before being notified
    hourly = sessions[send:send + 48 * 60].reshape(-1, 60).sum(axis=1)
    assert 1 <= int(np.argmax(hourly)) <= 5                      # the wave comes a few hours later
    assert hourly[0] < hourly.max() / 3 and hourly[24] < hourly.max() / 10
    # half the sessions by about send_hours / 2 + median after the first send
    median_minute = int(np.searchsorted(np.cumsum(sessions), outcome.responders / 2)) - send
    assert 3 * 60 <= median_minute <= 5 * 60
    # nothing after the truncation (max_days after the last send)
    assert sessions[send + 2 * 60 + 7 * 1440:].sum() == 0


def test_a_narrow_delay_puts_the_median_at_half_the_send_plus_the_median_delay():
    event = _campaign(dt.date(2025, 3, 3), notifications=500_000.0, median_hours=6.0, sigma=0.2, send_hours=1)
    sessions, outcome = campaign_sessions(event, 1.0, CALENDAR, np.random.default_rng(2))
    send = CALENDAR.minute_index(dt.datetime(2025, 3, 3, 10))
    median_minute = int(np.searchsorted(np.cumsum(sessions), outcome.responders / 2)) - send
    assert abs(median_minute - (30 + 360)) <= 10


def test_the_same_seed_gives_the_same_sessions():
    event = _campaign(dt.date(2025, 3, 3))
    first, a = campaign_sessions(event, 1.0, CALENDAR, np.random.default_rng(42))
    again, b = campaign_sessions(event, 1.0, CALENDAR, np.random.default_rng(42))
    other, _ = campaign_sessions(event, 1.0, CALENDAR, np.random.default_rng(43))
    np.testing.assert_array_equal(first, again)
    assert a == b
    assert not np.array_equal(first, other)


def test_nobody_answers_a_zero_share():
    event = _campaign(dt.date(2025, 3, 3), share=0.0)
    sessions, outcome = campaign_sessions(event, 1.0, CALENDAR, np.random.default_rng(0))
    assert outcome.notified == 200_000 and outcome.responders == 0 and not sessions.any()
