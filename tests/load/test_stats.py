import random

from load.checks import Outcome
from load.stats import LatenessHistogram, ReplayStats


def test_percentiles_bound_the_true_value():
    rng = random.Random(1)
    values = [rng.expovariate(1 / 5.0) for _ in range(20_000)]
    histogram = LatenessHistogram()
    for value in values:
        histogram.add(value)
    exact = sorted(values)[int(0.99 * len(values)) - 1]
    assert exact <= histogram.percentile(99) <= exact * 1.06 + 0.1
    assert 0.97 < histogram.share_within(20.0) < 0.99


def test_snapshots_merge_by_adding():
    first, second = ReplayStats(), ReplayStats()
    for stats, operation, n in ((first, "search", 3), (second, "search", 2), (second, "deposit", 4)):
        for i in range(n):
            stats.planned(i)
            stats.record_send(operation, 1.0 * i, i)
            stats.record_outcome(operation, i != 0, i + 0.5)
    merged = ReplayStats.from_snapshots([first.snapshot(), second.snapshot()])
    summary = merged.summary()
    assert summary["sent"] == 9 and summary["sent_by_operation"] == {"deposit": 4, "search": 5}
    assert summary["failed"] == 3 and summary["succeeded"] == 6
    assert merged.rates()[0] == {"second": 0, "planned": 3, "sent": 3, "succeeded": 0, "failed": 3}
    assert summary["last_answer_s"] == 3.5


def test_wrong_answers_are_failures_counted_apart_and_merged():
    first, second = ReplayStats(), ReplayStats()
    for stats, outcomes in ((first, [Outcome.OK, Outcome.WRONG, Outcome.FAILED]), (second, [Outcome.WRONG, True])):
        for outcome in outcomes:
            stats.record_send("search", 1.0, 0)
            stats.record_outcome("search", outcome, 0.5)
    old = {key: value for key, value in second.snapshot().items() if key != "wrong"}  # a worker of before
    summary = ReplayStats.from_snapshots([first.snapshot(), second.snapshot(), old]).summary()
    assert summary["succeeded"] == 3 and summary["failed"] == 4
    assert summary["wrong_answers"] == 2 and summary["wrong_answers_by_operation"] == {"search": 2}
