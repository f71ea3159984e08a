"""The SimPy side of an outage: a connector's back-off, its drain speed, and that nothing is lost."""

import datetime as dt

import numpy as np
import simpy

from simulator.calendar import Calendar
from simulator.outage import Connector, Platform, apply_outage
from simulator.scenario import Outage, RetryPolicy

NO_JITTER = np.zeros(16)


def _run(produced, down_minutes, retry, drain_per_minute):
    env = simpy.Environment()
    platform = Platform(env)
    env.process(platform.outage(0, down_minutes))
    delivered = np.zeros_like(produced)
    connector = Connector(env, platform, produced, delivered, drain_per_minute, retry, NO_JITTER)
    env.process(connector.run())
    env.run()
    return delivered, connector


def test_backs_off_exponentially_then_drains_at_its_top_speed():
    produced = np.ones(200, dtype=np.int64)  # one document a minute
    retry = RetryPolicy(first_delay_s=60, multiplier=2, max_delay_s=1800, jitter=0.0, drain_speedup=5)
    delivered, connector = _run(produced, down_minutes=30, retry=retry, drain_per_minute=5)
    # refused at 0, retries at 1, 3, 7, 15, 31 minutes: the one at 31 succeeds
    assert delivered[:31].sum() == 0
    assert delivered[31] == 5                           # the backlog (32 documents) at 5 a minute
    burst = delivered[31:40]
    assert (burst[:6] == 5).all()                       # still draining
    assert delivered.sum() == produced.sum() and connector.backlog == 0
    assert (delivered[60:] == 1).all()                  # back to normal afterwards


def test_max_delay_caps_the_back_off():
    produced = np.ones(600, dtype=np.int64)
    retry = RetryPolicy(first_delay_s=60, multiplier=10, max_delay_s=120, jitter=0.0, drain_speedup=2)
    delivered, _ = _run(produced, down_minutes=100, retry=retry, drain_per_minute=50)
    first = int(np.flatnonzero(delivered)[0])
    assert 100 <= first <= 102                          # attempts every 2 minutes once capped
    assert delivered.sum() == produced.sum()


def test_a_connector_idle_during_the_outage_is_not_disturbed():
    produced = np.zeros(100, dtype=np.int64)
    produced[50:] = 3
    delivered, _ = _run(produced, down_minutes=30, retry=RetryPolicy(jitter=0.0), drain_per_minute=10)
    np.testing.assert_array_equal(delivered, produced)


def test_backlog_still_queued_at_the_end_is_counted_as_pending():
    produced = np.ones(40, dtype=np.int64)
    delivered, connector = _run(produced, down_minutes=60, retry=RetryPolicy(jitter=0.0), drain_per_minute=10)
    assert delivered.sum() == 0 and connector.backlog == produced.sum()


def test_apply_outage_keeps_every_document_and_spreads_the_burst():
    calendar = Calendar(dt.date(2025, 11, 18), dt.date(2025, 11, 18))
    rng = np.random.default_rng(5)
    expected = {"lab": np.full(calendar.minutes, 20.0), "hospital": np.full(calendar.minutes, 10.0)}
    deposits = {name: rng.poisson(rate) for name, rate in expected.items()}
    before = {name: series.copy() for name, series in deposits.items()}
    event = Outage(kind="outage", start=dt.datetime(2025, 11, 18, 9), duration_minutes=120,
                   retry=RetryPolicy(jitter=0.3), retry_groups_per_sector=50)
    outcome = apply_outage(event, deposits, expected, {"lab": (4000, 1.2), "hospital": (3000, 1.4)}, calendar, rng)
    for name in deposits:
        assert deposits[name].sum() == before[name].sum()              # nothing lost
        assert deposits[name][540:660].sum() == 0                      # nothing accepted while down
        np.testing.assert_array_equal(deposits[name][:540], before[name][:540])
    assert outcome.produced == outcome.delivered and outcome.pending_at_end == 0 and outcome.connectors == 100
    after = deposits["lab"][660:720]
    assert after.max() > 5 * 20 and np.count_nonzero(after > 40) > 3  # a burst, spread over several minutes
