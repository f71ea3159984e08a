import json
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


def _known_sends() -> ReplayStats:
    """search: 100 requests 0.1 … 10.0 ms late; deposit: 2, 2 and 250 ms; retrieve: one sent 0.5 ms late, two not
    sent; mask: only not sent. Three searches and a deposit leave, one search is answered."""
    stats = ReplayStats()
    for i in range(1, 101):
        stats.record_send("search", i / 10, 0)
    for lateness_ms in (2.0, 2.0, 250.0):
        stats.record_send("deposit", lateness_ms, 1)
    stats.record_send("retrieve", 0.5, 1)
    for operation in ("retrieve", "retrieve", "mask"):
        stats.record_send(operation, 0.2, 1)
        stats.record_not_sent(operation, 0.2, 1)
    for operation in ("search", "search", "search", "deposit"):
        stats.leaving(operation)
    stats.answered("search")
    stats.answered("deposit")
    return stats


def _columns(row: dict) -> tuple:
    return (row["type"], row["name"], row["sent"], row["not_sent"], row["lateness_p50_ms"], row["lateness_p99_ms"],
            row["lateness_max_ms"], row["in_flight"], row["in_flight_max"])


def test_rows_per_operation_as_locust_names_its_requests_then_aggregated():
    stats = _known_sends()
    rows = stats.by_operation()
    assert [_columns(row) for row in rows[:-1]] == [
        ("POST", "deposit", 3, 0, 2.0, 250.0, 250.0, 0, 1),      # p99: a bin edge above 250, held to the max
        ("POST", "mask", 0, 1, None, None, None, 0, 0),           # nothing left: no lateness, not a zero
        ("GET", "retrieve", 1, 2, 0.5, 0.5, 0.5, 0, 0),
        ("GET", "search", 100, 0, 5.0, 9.9, 10.0, 2, 3),
    ]
    summary = stats.summary()
    aggregated = rows[-1]
    assert (aggregated["type"], aggregated["name"]) == ("", "Aggregated")
    assert (aggregated["sent"], aggregated["not_sent"], aggregated["in_flight"]) == (104, 3, 2)
    for key in ("lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "in_flight_max"):
        assert aggregated[key] == summary[key], key
    assert aggregated["in_flight_max"] == 4 and aggregated["lateness_max_ms"] == 250.0
    assert summary["operations"] == rows  # replay.json carries them


def test_per_operation_lateness_merges_across_processes_as_one_process_would_count_it():
    first, second, alone = ReplayStats(), ReplayStats(), ReplayStats()
    sends = [("search", 1.0), ("search", 40.0), ("deposit", 3.0), ("search", 0.3), ("deposit", 700.0)]
    for i, (operation, lateness_ms) in enumerate(sends):
        for stats in (first if i % 2 else second, alone):
            stats.record_send(operation, lateness_ms, 0)
            stats.leaving(operation)
    second.answered("search")
    alone.answered("search")
    # as a worker's message travels (JSON-safe keys), and the bins only it used
    wire = [json.loads(json.dumps(stats.snapshot())) for stats in (first, second)]
    assert all(len(bins) <= 3 for snapshot in wire for bins in snapshot["lateness_by_operation"].values())
    merged = ReplayStats.from_snapshots(wire)
    for operation in ("search", "deposit"):
        assert merged.lateness_by_operation[operation].counts == alone.lateness_by_operation[operation].counts
        assert merged.late_max_by_operation[operation] == alone.late_max_by_operation[operation]
    assert [_columns(row)[:8] for row in merged.by_operation()] == [_columns(row)[:8] for row in alone.by_operation()]
    # the most in flight: each process's own (searches: 2 and 1), added (an upper bound of the whole's)
    assert {row["name"]: row["in_flight_max"] for row in merged.by_operation()} == {
        "deposit": 2, "search": 3, "Aggregated": 5}


def test_a_snapshot_without_per_operation_figures_still_merges():
    new, old = _known_sends(), ReplayStats()
    old.record_send("search", 1.0, 0)
    before = {key: value for key, value in old.snapshot().items()  # a worker of before this change
              if key not in ("in_flight", "lateness_by_operation", "late_max_by_operation", "in_flight_by_operation",
                             "in_flight_max_by_operation")}
    rows = {row["name"]: row for row in ReplayStats.from_snapshots([new.snapshot(), before]).by_operation()}
    assert rows["search"]["sent"] == 101 and rows["search"]["lateness_max_ms"] == 10.0
    assert rows["Aggregated"]["sent"] == 105
