"""The PostgreSQL back end, selected by a ``postgresql://`` URL; same tables, same rules, same tests.

Reads go through an async connection pool (psycopg 3) so the event loop never waits on the network,
and are grouped: the reads asked during one turn of the event loop travel together as one pipeline on
one connection (one round trip, one wake-up of one backend), which under load costs PostgreSQL and
the worker about half as much per read as a query of its own. Each read keeps its own statement and
result, so grouping changes no answer.

Writes go through the group committer's own synchronous connection. A professional's read is
recorded, before it is answered, in the worker's access-history journal in the data directory (see
``audit_journal``: one ``write`` + ``fdatasync`` per group, where a transaction per group cost
PostgreSQL and the worker a third of each read), and indexed into ``audit_events`` in large
statements at least once a second and before the history is read. Like the documents' files, the
journals live on this service's disk: the data directory and the database go together (see
``storage.check_data_directory``).

Transactions use the default READ COMMITTED isolation: every write re-reads what it depends on inside
the transaction, and uniqueness is enforced by constraints.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from record_service import schema
from record_service.committer import GroupCommitter
from record_service.storage import Store

_SCHEMA_LOCK = 0x5E6E0001  # advisory lock: several workers may start at once
_INDEXER_LOCK = 0x5E6E0002  # advisory lock: one audit-journal indexer at a time
_POOL_SIZE = 8  # read connections per worker process
_AUDIT_UNNEST = ("INSERT INTO audit_events (patient_ins, at_us, actor_rpps, actor_sector, actor_finess, action,"
                 " document_id, outcome, detail) SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[],"
                 " %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])")


@lru_cache(maxsize=512)
def to_psycopg(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` (literal ``%`` doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


def conninfo(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


class _PostgresWriteTransaction:
    def __init__(self, url: str):
        self._connection = psycopg.connect(conninfo(url), autocommit=False)
        self._connection.execute("SET synchronous_commit = on")

    def begin(self) -> None:
        pass  # psycopg opens a transaction with the first statement

    def commit(self) -> None:
        self._connection.commit()

    def rollback(self) -> None:
        self._connection.rollback()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self._connection.execute(to_psycopg(sql), params)
        return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._connection.cursor() as cursor:
            cursor.executemany(to_psycopg(sql), rows)

    def close(self) -> None:
        self._connection.close()


class _PostgresIndexerTransaction(_PostgresWriteTransaction):
    """An audit-journal indexer's connection: its transactions start by taking the indexers' advisory lock,
    and the rows it is given (the columns of ``AUDIT_INSERT``) go in as one statement."""

    def begin(self) -> None:
        self._connection.execute("SELECT pg_advisory_xact_lock(%s)", (_INDEXER_LOCK,))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._connection.execute(_AUDIT_UNNEST, [list(column) for column in zip(*rows)])


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, settings, on_commit=None):
        # the access history's journals live in the data directory, beside the documents' files
        super().__init__(settings, Path(settings.data_dir) / "audit.journals", on_commit)
        self._pool: AsyncConnectionPool | None = None
        self._reads: list[tuple[str, Sequence[Any], asyncio.Future]] | None = None  # asked this loop turn
        self._read_tasks: set[asyncio.Task] = set()

    def create_schema(self) -> None:
        with psycopg.connect(conninfo(self.settings.db_url), autocommit=False) as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in schema.statements("postgresql"):
                connection.execute(statement)
            connection.commit()

    def connect(self) -> _PostgresWriteTransaction:
        return _PostgresWriteTransaction(self.settings.db_url)

    async def open(self) -> None:
        self.create_schema()
        # opened in full at start: connections are not set up while requests wait for them (each find is
        # one query, so 8 per worker keeps a 2-core machine's CPUs busy without a backend per request)
        self._pool = AsyncConnectionPool(conninfo(self.settings.db_url), min_size=_POOL_SIZE, max_size=_POOL_SIZE,
                                         open=False, kwargs={"autocommit": True})
        await self._pool.open(wait=True, timeout=30)
        url = self.settings.db_url
        self.committer = GroupCommitter(lambda: _PostgresWriteTransaction(url), self.settings.max_batch,
                                        self._on_commit, name="record-committer")
        self.committer.start()
        self._start_access_history(lambda: _PostgresIndexerTransaction(url))

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._pool is not None:
                await self._pool.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        loop = asyncio.get_running_loop()
        if self._reads is None:
            self._reads = []
            loop.call_soon(self._send_reads)
        future = loop.create_future()
        self._reads.append((to_psycopg(sql), params, future))
        return await future

    def _send_reads(self) -> None:
        reads, self._reads = self._reads, None
        task = asyncio.ensure_future(self._run_reads(reads))
        self._read_tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._read_tasks.discard)

    async def _run_reads(self, reads: list[tuple[str, Sequence[Any], asyncio.Future]]) -> None:
        groups: dict[str, list[int]] = {}  # reads of one statement, by their place in ``reads``
        for index, (sql, _, _) in enumerate(reads):
            groups.setdefault(sql, []).append(index)
        results: list = [None] * len(reads)
        try:
            async with self._pool.connection() as connection:
                try:
                    if len(groups) == 1 and len(reads) == 1:
                        results[0] = await (await connection.execute(reads[0][0], reads[0][1])).fetchall()
                    else:
                        async with connection.pipeline():
                            cursors = [(members, await connection.execute(*_one_statement(reads, members)))
                                       for members in groups.values()]
                        for members, cursor in cursors:
                            rows = await cursor.fetchall()
                            if len(members) == 1:
                                results[members[0]] = rows
                                continue
                            for member in members:
                                results[member] = []
                            for row in rows:  # (which read, its columns..., its rank)
                                results[members[row[0]]].append(row[1:-1])
                except psycopg.Error:
                    # one failed read aborts the rest of its pipeline: run them one by one so that each
                    # gets its own answer (and only the failing one its error)
                    for index, (sql, params, _) in enumerate(reads):
                        try:
                            results[index] = await (await connection.execute(sql, params)).fetchall()
                        except psycopg.Error as error:
                            results[index] = error
        except Exception as error:  # no connection, or the server went away: every read of the group fails
            results = [error] * len(reads)
        for (_, _, future), result in zip(reads, results):
            if future.done():  # its request was cancelled
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _one_statement(reads: list[tuple[str, Sequence[Any], asyncio.Future]], members: list[int]) -> tuple[str, list]:
    """The reads ``members`` (all of one statement) as one statement: each read's parameters are a row of
    a VALUES list that the statement, made LATERAL, runs once per row. PostgreSQL then plans, executes
    and answers once for the lot, and the worker sends and decodes once (measured: half the worker's
    cost per read of a pipeline of separate statements, for eight or more)."""
    sql = reads[members[0]][0]
    if len(members) == 1:
        return sql, list(reads[members[0]][1])
    parameters: list = []
    for member in members:
        parameters.extend(reads[member][1])
    return _lateral(sql, len(members), len(reads[members[0]][1])), parameters


@lru_cache(maxsize=512)
def _lateral(sql: str, count: int, arity: int) -> str:
    """``sql`` (psycopg placeholders, ``arity`` of them) run for ``count`` rows of parameters, rows tagged
    with their read's number and kept in the statement's own order."""
    pieces = re.split(r"(?<!%)%s", sql)  # placeholders, not a literal "%%" followed by "s"
    inner = pieces[0] + "".join(f"_q._a{i}{piece}" for i, piece in enumerate(pieces[1:]))
    row = ", ".join(["%s"] * arity)
    values = ", ".join(f"({n}{', ' if arity else ''}{row})" for n in range(count))
    columns = "".join(f", _a{i}" for i in range(arity))
    return (f"SELECT _q._n, _r.* FROM (VALUES {values}) AS _q(_n{columns}) CROSS JOIN LATERAL"
            f" (SELECT _s.*, row_number() OVER () AS _rank FROM ({inner}) AS _s) AS _r ORDER BY _q._n, _r._rank")
