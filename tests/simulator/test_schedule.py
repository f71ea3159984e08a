"""The replay schedule and its corpus: every read finds its document, every identifier is well formed."""

import datetime as dt

import numpy as np
import pyarrow.compute as pc
import pytest

from segur.identifiers import is_valid_finess, is_valid_ins, is_valid_rpps
from simulator.engine import OPERATIONS, simulate
from simulator.outputs import corpus_table, schedule_table
from simulator.schedule import build_replay, busiest_window, fixed_window


@pytest.fixture(scope="module")
def replay(baseline):
    scenario = baseline.with_overrides(start=dt.date(2025, 10, 13), end=dt.date(2025, 10, 14), scale=0.1)
    traffic = simulate(scenario)
    plan = build_replay(traffic, busiest_window(traffic, 60))
    return traffic, plan, schedule_table(plan).to_pylist(), corpus_table(plan).to_pylist()


def test_busiest_window_is_the_busiest_clock_hour(replay):
    traffic, plan, _, _ = replay
    hourly = traffic.counts.sum(axis=(0, 1)).reshape(-1, 60).sum(axis=1)
    assert plan.window.start_minute == int(np.argmax(hourly)) * 60
    assert plan.window.start.minute == 0


def test_rows_are_time_ordered_inside_the_window(replay):
    _, plan, rows, _ = replay
    offsets = [row["offset_s"] for row in rows]
    assert offsets == sorted(offsets) and 0 <= offsets[0] and offsets[-1] < plan.window.minutes * 60


def test_deposits_match_the_counts_exactly(replay):
    traffic, plan, rows, _ = replay
    window = traffic.counts[:, :, plan.window.start_minute:plan.window.end_minute]
    for operation in ("deposit", "search", "mask", "delete", "block"):
        sent = sum(1 for row in rows if row["operation"] == operation)
        assert sent == window[OPERATIONS.index(operation)].sum(), operation
    retrieves = sum(1 for row in rows if row["operation"] == "retrieve")
    planned = window[OPERATIONS.index("retrieve")].sum()
    assert 0.97 * planned <= retrieves <= planned  # opens of the last seconds' searches fall in the next window


def test_every_read_targets_an_existing_document(replay):
    _, _, rows, corpus = replay
    corpus_by_id = {doc["document_id"]: doc for doc in corpus}
    deposited: dict[str, dict] = {}
    targeted = 0
    for row in rows:
        if row["operation"] == "deposit":
            assert row["document_id"] not in corpus_by_id and row["document_id"] not in deposited
            deposited[row["document_id"]] = row
        elif row["operation"] in ("retrieve", "mask", "delete"):
            targeted += 1
            doc = corpus_by_id.get(row["document_id"]) or deposited.get(row["document_id"])
            assert doc is not None, row
            if row["actor_kind"] == "patient":
                assert doc["patient_ins"] == row["patient_ins"]  # patients open their own documents
            if row["operation"] == "delete":
                assert doc["author_kind"] == "patient" and doc["author_id"] == row["actor_id"]  # only the author deletes
    assert targeted > 1000


def test_identifiers_are_well_formed(replay):
    _, _, rows, corpus = replay
    for row in rows:
        assert is_valid_ins(row["patient_ins"])
        if row["actor_kind"] == "professional":
            assert is_valid_rpps(row["actor_id"])
        else:
            assert row["actor_id"] == row["patient_ins"]
        if row["facility_id"] is not None:
            assert is_valid_finess(row["facility_id"])
        if row["operation"] == "block":
            assert is_valid_rpps(row["target_rpps"])
        if row["operation"] == "deposit":
            assert row["type_code"] and 10_000 <= row["size_bytes"] <= 20_000 * 1024
    assert all(is_valid_ins(doc["patient_ins"]) for doc in corpus)
    assert all(doc["date"] is not None for doc in corpus)


def test_sizes_are_heavy_tailed(replay):
    _, _, rows, _ = replay
    sizes = np.array([row["size_bytes"] for row in rows if row["operation"] == "deposit"])
    assert sizes.min() >= 10 * 1024 and np.percentile(sizes, 99.9) > 5 * np.median(sizes)


def test_a_few_producers_make_much_of_the_volume(replay):
    _, _, rows, _ = replay
    hospitals = [row["facility_id"] for row in rows if row["operation"] == "deposit" and row["sector"] == "hospital"]
    _, counts = np.unique(hospitals, return_counts=True)
    top = np.sort(counts)[::-1]
    assert top[: max(1, top.size // 10)].sum() > 0.3 * top.sum()  # the top 10 % send > 30 %


def test_fixed_window_outside_the_period_is_refused(replay):
    traffic, _, _, _ = replay
    from segur.errors import InputError
    with pytest.raises(InputError, match="outside the simulated period"):
        fixed_window(traffic, dt.datetime(2030, 1, 1), 60)


def test_document_ids_differ_between_scenarios(baseline, smoke):
    ids = []
    for scenario in (smoke, smoke.with_overrides(seed=smoke.seed + 1)):
        traffic = simulate(scenario)
        plan = build_replay(traffic, busiest_window(traffic, 10))
        ids.append(set(pc.drop_null(schedule_table(plan)["document_id"]).to_pylist()))
    assert ids[0] and not ids[0] & ids[1]
