"""SQLite reads made close together share one read transaction, which ends with the loop's next turn."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from open_stores import with_open_store
from record_service.outcomes import ServiceError
from record_service.settings import Settings
from record_service.storage import open_store, prepare


@pytest.fixture
def store(tmp_path):
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'records.sqlite3'}", data_dir=str(tmp_path),
                        key_file=str(tmp_path / "key"))
    prepare(settings)
    return open_store(settings)


def _block(store, patient: str) -> None:
    """A commit by another connection, as another worker's would be."""
    with sqlite3.connect(store.path, isolation_level=None) as other:
        other.execute("INSERT INTO blocks (patient_ins, rpps, at_us) VALUES (?, '10000000001', 0)", (patient,))


def test_reads_of_one_turn_share_a_snapshot_that_ends_with_the_next_turn(store):
    count = "SELECT count(*) FROM blocks WHERE patient_ins = ?"

    async def body():
        assert await store.fetch(count, ("p1",)) == [(0,)]
        assert store._reader.in_transaction
        _block(store, "p1")
        # same turn: the same snapshot, as if both reads had been made at once
        assert await store.fetch(count, ("p1",)) == [(0,)]
        await asyncio.sleep(0)  # the next turn ends the transaction
        assert not store._reader.in_transaction
        assert await store.fetch(count, ("p1",)) == [(1,)]  # a later request sees the commit

    with_open_store(store, body)


def test_a_request_that_arrives_after_a_commit_reads_it_even_within_an_open_transaction(store):
    """A request queued on the loop after the transaction's first read runs after the callback that
    ends it: whatever was committed before the request arrived is visible to it."""
    count = "SELECT count(*) FROM blocks WHERE patient_ins = ?"

    async def body():
        seen: list = []

        async def later_request():
            seen.append(await store.fetch(count, ("p2",)))

        assert await store.fetch(count, ("p2",)) == [(0,)]  # opens the transaction in this turn
        _block(store, "p2")  # committed, then the request arrives
        request = asyncio.ensure_future(later_request())
        await request
        assert seen == [[(1,)]]

    with_open_store(store, body)


def test_a_failed_read_leaves_no_transaction_behind(store):
    async def body():
        with pytest.raises(ServiceError) as failed:  # a database that lost a table is a storage fault: 503
            await store.fetch("SELECT * FROM no_such_table")
        assert failed.value.status == 503 and isinstance(failed.value.__cause__, sqlite3.OperationalError)
        await asyncio.sleep(0)
        assert not store._reader.in_transaction
        assert await store.fetch("SELECT 1") == [(1,)]

    with_open_store(store, body)
