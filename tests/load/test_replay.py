"""The open-model engine with a fake sender: on time when it can be, late (never dropped) when it cannot."""

import time

import gevent

from load.replay import OpenLoopReplay
from load.stats import ReplayStats


def _rows(n, spacing_s):
    return [{"offset_s": i * spacing_s, "operation": "search"} for i in range(n)]


def test_requests_leave_at_their_planned_time():
    stats, sent_at = ReplayStats(), []

    def send(row):
        sent_at.append(time.time())
        gevent.sleep(0.05)  # a slow answer must not hold back the next request (open model)
        return True

    start = time.time() + 0.1
    OpenLoopReplay(_rows(40, 0.01), send, stats, start_at=start).run()
    assert len(sent_at) == 40
    lateness = [(t - (start + i * 0.01)) * 1000 for i, t in enumerate(sorted(sent_at))]
    assert max(lateness) < 20
    assert stats.summary()["share_within_20ms"] == 1.0


def test_a_full_pool_makes_requests_late_but_sends_them_all():
    stats = ReplayStats()
    OpenLoopReplay(_rows(6, 0.0), lambda row: gevent.sleep(0.05) or True, stats, start_at=time.time(),
                   concurrency=1).run()
    summary = stats.summary()
    assert summary["sent"] == 6 and summary["succeeded"] == 6
    assert summary["lateness_max_ms"] >= 200  # the sixth waited for five answers of 50 ms


def test_speedup_divides_the_schedule():
    stats = ReplayStats()
    started = time.time()
    OpenLoopReplay(_rows(11, 1.0), lambda row: True, stats, start_at=started, speedup=50).run()
    assert 0.18 <= time.time() - started < 0.5  # 10 s of scenario at 50x


def test_unanswered_requests_are_counted_after_the_drain_time():
    stats = ReplayStats()
    OpenLoopReplay(_rows(3, 0.0), lambda row: gevent.sleep(5) or True, stats, start_at=time.time(), drain_s=0.1).run()
    assert stats.summary()["unanswered"] == 3 and stats.summary()["sent"] == 3


def test_lateness_is_taken_when_a_connection_is_free_not_when_the_greenlet_starts():
    from gevent.lock import BoundedSemaphore

    stats, connection = ReplayStats(), BoundedSemaphore(1)   # one connection, answers of 50 ms
    OpenLoopReplay(_rows(5, 0.0), lambda row: gevent.sleep(0.05) or True, stats, start_at=time.time(),
                   gate=lambda: connection).run()
    summary = stats.summary()
    assert summary["sent"] == 5 and summary["lateness_max_ms"] >= 180   # the fifth left after four answers
    assert summary["lateness_p99_ms"] <= summary["lateness_max_ms"]      # a percentile never above the max


def test_rows_whose_target_is_missing_are_not_sent_and_counted_apart():
    from load.checks import Outcome

    stats = ReplayStats()
    rows = [{**row, "i": i} for i, row in enumerate(_rows(6, 0.0))]
    OpenLoopReplay(rows, lambda row: Outcome.NOT_SENT if row["i"] % 2 else True, stats, start_at=time.time()).run()
    summary = stats.summary()
    assert summary["not_sent"] == 3 and summary["not_sent_by_operation"] == {"search": 3}
    assert summary["sent"] == 3 and summary["sent_by_operation"] == {"search": 3} and summary["failed"] == 0
    assert sum(stats.lateness.counts) == 3 and sum(row["sent"] for row in stats.rates()) == 3


def test_the_real_concurrency_is_counted():
    stats = ReplayStats()
    OpenLoopReplay(_rows(8, 0.0), lambda row: gevent.sleep(0.05) or True, stats, start_at=time.time()).run()
    assert stats.summary()["in_flight_max"] == 8 and stats.in_flight == 0   # all eight waited at once


def test_requests_in_flight_are_counted_per_operation():
    stats = ReplayStats()
    rows = [{**row, "operation": "deposit" if i < 3 else "search"} for i, row in enumerate(_rows(8, 0.0))]
    OpenLoopReplay(rows, lambda row: gevent.sleep(0.05) or True, stats, start_at=time.time()).run()
    assert dict(stats.in_flight_max_by_operation) == {"deposit": 3, "search": 5}       # all waited at once
    assert dict(stats.in_flight_by_operation) == {"deposit": 0, "search": 0}           # and were answered
    assert [(row["name"], row["sent"]) for row in stats.by_operation()] == [("deposit", 3), ("search", 5),
                                                                              ("Aggregated", 8)]
