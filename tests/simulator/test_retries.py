"""People retrying refused requests: back-off after the outage, or giving up, and every request counted."""

import numpy as np
import pytest

from simulator.retries import retry_refused
from simulator.scenario import PeopleRetry


def _series(seed, minutes=720, rate=40.0):
    return np.random.default_rng(seed).poisson(rate, minutes).astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2, 99])
@pytest.mark.parametrize("down_start, down_end", [(100, 160), (-30, 40), (690, 800), (0, 720), (300, 301), (700, 718)])
def test_every_refused_request_is_counted_once(seed, down_start, down_end):
    series = _series(seed)
    before = series.copy()
    policy = PeopleRetry(first_delay_s=30, multiplier=2, max_delay_s=900, jitter=0.5, max_attempts=4)
    outcome = retry_refused(series, down_start, down_end, policy, np.random.default_rng(seed))
    lo, hi = max(down_start, 0), min(down_end, series.size)
    assert outcome.refused == before[lo:hi].sum() > 0
    assert outcome.refused == outcome.retried + outcome.abandoned + outcome.pending_at_end
    assert series.sum() == before.sum() - outcome.refused + outcome.retried
    assert series.min() >= 0 and not series[lo:hi].any()            # nothing accepted while down
    np.testing.assert_array_equal(series[:lo], before[:lo])          # the past is untouched
    if down_end >= series.size:                                      # no try can succeed inside the series
        assert outcome.retried == 0 and outcome.pending_at_end + outcome.abandoned == outcome.refused


def test_retries_land_after_the_outage_end_within_the_back_off():
    series = np.full(600, 100, dtype=np.int64)
    policy = PeopleRetry(first_delay_s=30, multiplier=2, max_delay_s=900, jitter=0.0, max_attempts=10)
    outcome = retry_refused(series, 200, 205, policy, np.random.default_rng(4))
    # tries 30, 90, 210, 450 s after the request: a 5-minute outage is outlasted by everyone
    assert outcome.refused == 500 and outcome.abandoned == 0 and outcome.pending_at_end == 0
    added = series - 100
    added[200:205] += 100
    assert added[:205].sum() == 0 and added.min() >= 0
    assert added[205:].sum() == outcome.retried == 500
    last = int(np.flatnonzero(added)[-1])
    assert last <= 205 + 8                                           # at most 450 s after the last request
    assert added[205] > 0                                            # the first ones come back at once


def test_a_long_outage_with_few_attempts_abandons_most():
    series = np.full(1000, 50, dtype=np.int64)
    policy = PeopleRetry(first_delay_s=30, multiplier=2, max_delay_s=900, jitter=0.5, max_attempts=2)
    outcome = retry_refused(series, 100, 340, policy, np.random.default_rng(8))
    assert outcome.refused == 240 * 50
    assert outcome.abandoned > 0.95 * outcome.refused
    assert 0 < outcome.retried < 0.05 * outcome.refused              # only the last few minutes' requests
    assert series[340:350].sum() - 10 * 50 == outcome.retried        # and they come back right after


def test_more_attempts_give_up_less():
    outcomes = []
    for attempts in (1, 3, 8):
        series = np.full(1000, 50, dtype=np.int64)
        policy = PeopleRetry(first_delay_s=30, multiplier=2, max_delay_s=900, jitter=0.3, max_attempts=attempts)
        outcomes.append(retry_refused(series, 100, 130, policy, np.random.default_rng(1)))
    abandoned = [o.abandoned for o in outcomes]
    assert abandoned[0] > abandoned[1] > abandoned[2] == 0


def test_a_try_after_the_series_end_is_pending():
    series = np.full(120, 10, dtype=np.int64)
    policy = PeopleRetry(first_delay_s=300, multiplier=1, max_delay_s=300, jitter=0.0, max_attempts=3)
    outcome = retry_refused(series, 110, 118, policy, np.random.default_rng(0))
    # tries every 5 minutes: requests of minutes 113-114 come back at 118-119, those of 110-112 and
    # 115-117 succeed at minute 120 or later, past the series
    assert outcome.refused == 80 and outcome.abandoned == 0
    assert outcome.retried == 20 and outcome.pending_at_end == 60
    np.testing.assert_array_equal(series[110:], [0] * 8 + [20, 20])


def test_the_same_seed_gives_the_same_retries():
    policy = PeopleRetry()
    runs = []
    for seed in (5, 5, 6):
        series = _series(0)
        outcome = retry_refused(series, 100, 130, policy, np.random.default_rng(seed))
        runs.append((series, outcome))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_an_outage_outside_the_series_changes_nothing():
    series = _series(3)
    before = series.copy()
    outcome = retry_refused(series, 800, 900, PeopleRetry(), np.random.default_rng(0))
    np.testing.assert_array_equal(series, before)
    assert outcome.refused == outcome.retried == outcome.abandoned == outcome.pending_at_end == 0
