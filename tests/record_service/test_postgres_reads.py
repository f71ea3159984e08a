"""PostgreSQL reads grouped per event-loop turn: each read keeps its own answer, and its own error."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from record_service import postgres_store
from open_stores import with_open_store
from record_service.settings import Settings
from record_service.storage import open_store, prepare


@pytest.fixture
def store(postgres, tmp_path):
    settings = Settings(db_url=postgres.create_database(f"reads_{uuid.uuid4().hex[:8]}"), data_dir=str(tmp_path),
                        key_file=str(tmp_path / "key"))
    prepare(settings)
    return open_store(settings)


def test_reads_of_one_turn_share_a_pipeline_and_keep_their_own_answers(store):
    async def body():
        pool = store._pool
        sent: list[int] = []
        real_connection = pool.connection

        def counting_connection(*args, **kwargs):
            sent.append(1)
            return real_connection(*args, **kwargs)

        pool.connection = counting_connection
        reads = [store.fetch("SELECT ?::int * 2, ?::text", (n, f"n{n}")) for n in range(10)]
        failing = store.fetch("SELECT 1 / ?::int", (0,))  # division by zero, in the same turn
        results = await asyncio.gather(*reads, failing, return_exceptions=True)
        assert results[:10] == [[(n * 2, f"n{n}")] for n in range(10)]
        assert isinstance(results[10], psycopg.errors.DivisionByZero)
        assert len(sent) == 1  # one connection taken for the whole turn
        # a later turn is a group of its own, and the store still works after the failure
        assert await store.fetch("SELECT ?::int", (7,)) == [(7,)]
        assert len(sent) == 2

    with_open_store(store, body)


def test_a_cancelled_read_does_not_disturb_the_others(store):
    async def body():
        slow = asyncio.ensure_future(store.fetch("SELECT pg_sleep(0.2), ?::int", (1,)))
        quick = asyncio.ensure_future(store.fetch("SELECT ?::int", (2,)))
        await asyncio.sleep(0.05)
        slow.cancel()
        assert await quick == [(2,)]
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await store.fetch("SELECT ?::int", (3,)) == [(3,)]

    with_open_store(store, body)


def test_reads_of_one_statement_run_as_one_and_keep_their_rows_and_order(store):
    async def body():
        sql = ("SELECT g, ?::text, (SELECT 1), (SELECT 2) FROM generate_series(1, ?::int) AS g"
               " WHERE g % 2 = ? ORDER BY g DESC")
        reads = [store.fetch(sql, (f"read {n}", n, n % 2)) for n in range(12)]
        other = store.fetch("SELECT ?::int + 1", (41,))  # another statement in the same turn
        results = await asyncio.gather(*reads, other)
        for n in range(12):
            expected = [(g, f"read {n}", 1, 2) for g in range(n, 0, -1) if g % 2 == n % 2]
            assert results[n] == expected, n
        assert results[12] == [(42,)]

    with_open_store(store, body)


def test_reads_of_a_statement_without_order_keep_their_own_rows_and_skip_the_ranking(store):
    async def body():
        sql = "SELECT g, ?::text FROM generate_series(1, ?::int) AS g WHERE g % 2 = ?"
        reads = [store.fetch(sql, (f"read {n}", n, n % 2)) for n in range(12)]  # none, one or several rows each
        results = await asyncio.gather(*reads)
        for n in range(12):
            expected = {(g, f"read {n}") for g in range(1, n + 1) if g % 2 == n % 2}
            assert sorted(results[n]) == sorted(expected), n
        unordered = postgres_store._unnested(postgres_store.to_psycopg(sql), ("text", "int8", "int8"))
        ordered = postgres_store._unnested(postgres_store.to_psycopg(sql + " ORDER BY g"), ("text", "int8", "int8"))
        assert "row_number" not in unordered and "row_number" in ordered
        assert "order by" not in unordered.lower()

    with_open_store(store, body)


def test_a_batch_is_one_statement_whatever_the_number_of_reads(store):
    """Its text depends on the statement and its parameters' types only: psycopg converts it once and
    PostgreSQL prepares it once per connection."""
    sent: list[str] = []

    async def body():
        real_statements = postgres_store._statements

        def recording(reads, members):
            statements = real_statements(reads, members)
            sent.extend(sql for _, _, sql, _ in statements)
            return statements

        postgres_store._statements = recording
        try:
            sql = "SELECT ?::int * 2, ?::text"
            for count in (3, 7, postgres_store._GROUP_READS):
                results = await asyncio.gather(*(store.fetch(sql, (n, f"n{n}")) for n in range(count)))
                assert results == [[(n * 2, f"n{n}")] for n in range(count)]
        finally:
            postgres_store._statements = real_statements

    with_open_store(store, body)
    assert len(sent) == 3 and len(set(sent)) == 1
    assert len(sent[0]) < 4096  # psycopg caches its conversion of statements up to 4096 characters


def test_reads_whose_parameter_types_cannot_be_told_run_one_by_one_and_keep_their_answers(store):
    async def body():
        sql = "SELECT coalesce(?::int, -1) + ?::int"
        # first parameter: always NULL (no type to give its array), then mixed int and text
        results = await asyncio.gather(*(store.fetch(sql, (None, n)) for n in range(5)))
        assert results == [[(n - 1,)] for n in range(5)]
        mixed = await asyncio.gather(store.fetch("SELECT ?::text", (1,)), store.fetch("SELECT ?::text", ("a",)))
        assert mixed == [[("1",)], [("a",)]]

    with_open_store(store, body)


def test_batched_reads_give_back_bytes_numbers_and_text_as_they_are(store):
    async def body():
        sql = "SELECT decode(?::text, 'hex'), ?::int8 * 2, ?::text || '!'"
        reads = [store.fetch(sql, (bytes([n, 0, 255]).hex(), 2**40 + n, f"é{n}")) for n in range(6)]
        results = await asyncio.gather(*reads)
        assert results == [[(bytes([n, 0, 255]), 2 * (2**40 + n), f"é{n}!")] for n in range(6)]

    with_open_store(store, body)


def test_a_busy_turn_sends_its_reads_in_groups_of_bounded_size(store):
    async def body():
        sent: list[int] = []
        real_connection = store._pool.connection

        def counting_connection(*args, **kwargs):
            sent.append(1)
            return real_connection(*args, **kwargs)

        store._pool.connection = counting_connection
        count = 2 * postgres_store._GROUP_READS + 3
        results = await asyncio.gather(*(store.fetch("SELECT ?::int + 1", (n,)) for n in range(count)))
        assert results == [[(n + 1,)] for n in range(count)]
        assert len(sent) == 3  # two full groups, then the rest of the turn

    with_open_store(store, body)


def test_parameters_the_driver_refuses_fail_their_group_instead_of_leaving_it_waiting(store):
    async def body():
        reads = [store.fetch("SELECT ?::int", (n,)) for n in range(3)]
        refused = store.fetch("SELECT ?::int", None)  # not a sequence: the group cannot be built
        results = await asyncio.wait_for(asyncio.gather(*reads, refused, return_exceptions=True), 10)
        assert all(isinstance(result, Exception) for result in results)
        assert await store.fetch("SELECT ?::int", (5,)) == [(5,)]  # the next turn is served

    with_open_store(store, body)


def test_a_failure_in_a_pipeline_does_not_spoil_a_statement_for_later_reads(store, monkeypatch):
    """A statement psycopg would prepare at its sixth use, reached in a pipeline that a failed read aborts."""
    monkeypatch.setattr(postgres_store, "_POOL_SIZE", 1)  # every read on the same connection

    async def body():
        probe = "SELECT 1 WHERE ?::int = 0"
        for _ in range(5):
            assert await store.fetch(probe, (1,)) == []
        results = await asyncio.gather(store.fetch("SELECT 10 / ?::int", (0,)), store.fetch(probe, (0,)),
                                       return_exceptions=True)
        assert isinstance(results[0], psycopg.errors.DivisionByZero)
        assert results[1] == [(1,)]
        for _ in range(3):
            assert await store.fetch(probe, (0,)) == [(1,)]

    with_open_store(store, body)


def test_a_literal_percent_before_a_parameter_keeps_batching_right(store):
    async def body():
        sql = "SELECT '10%' || ?::text, ? * 2"
        results = await asyncio.gather(*(store.fetch(sql, (f"x{n}", n)) for n in range(4)))
        assert results == [[(f"10%x{n}", 2 * n)] for n in range(4)]
        assert "%%%s" in postgres_store.to_psycopg("SELECT 10%?")
        batched = postgres_store._unnested(postgres_store.to_psycopg("SELECT 10%?"), ("int8",))
        assert "10%%_q._a0" in batched

    with_open_store(store, body)
