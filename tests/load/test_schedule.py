"""Streaming and sharding the schedule: every row once, a patient's rows together."""

import pyarrow.parquet as pq
import pytest

from load.schedule import Shard, describe, planned_rows, read_rows, replay_rows
from segur.errors import InputError


def test_shards_partition_the_schedule_by_patient(smoke_run):
    everything = list(read_rows(smoke_run))
    assert len(everything) == pq.ParquetFile(smoke_run / "schedule.parquet").metadata.num_rows
    shards = [list(read_rows(smoke_run, Shard(i, 3))) for i in range(3)]
    assert sum(len(s) for s in shards) == len(everything)
    key = lambda r: (r["offset_s"], r["operation"], r["patient_ins"], r["document_id"])  # noqa: E731
    assert sorted(map(key, (r for s in shards for r in s))) == sorted(map(key, everything))
    owners = {}
    for index, shard in enumerate(shards):
        for row in shard:
            assert owners.setdefault(row["patient_ins"], index) == index


def test_rows_come_in_time_order(smoke_run):
    offsets = [r["offset_s"] for r in read_rows(smoke_run)]
    assert offsets == sorted(offsets)


def test_looping_the_window_counts_what_it_plays(smoke_run):
    facts = describe(smoke_run)
    assert facts.window_s == 600 and facts.metadata["scenario"] == "smoke"
    for limit in (None, 100.0, 600.0, 1500.0):
        rows = list(replay_rows(smoke_run, Shard(), facts.window_s, limit))
        assert len(rows) == planned_rows(smoke_run, facts.window_s, limit)
        if limit:
            assert all(r["offset_s"] < limit for r in rows)
    looped = list(replay_rows(smoke_run, Shard(), facts.window_s, 1500.0))
    assert {r["cycle"] for r in looped} == {0, 1, 2}
    assert [r["offset_s"] for r in looped] == sorted(r["offset_s"] for r in looped)


def test_not_a_schedule_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no replay schedule"):
        describe(tmp_path)
    (tmp_path / "schedule.parquet").write_text("nope")
    with pytest.raises(InputError, match="not a Parquet file"):
        describe(tmp_path)
