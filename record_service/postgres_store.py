"""The PostgreSQL back end, selected by a ``postgresql://`` URL; same tables, same rules, same tests.

Reads go through an async connection pool (psycopg 3) so the event loop never waits on the network,
and are grouped: the reads asked during one turn of the event loop travel together on one connection,
up to 16 a group (one round trip, one wake-up of one backend), those of one statement as a single
statement over arrays of their parameters (see :func:`_statements`), different statements as one
pipeline. Under load that costs PostgreSQL and the worker a fraction of a query per read. Each read
keeps its own result, and its own error, so grouping changes no answer. Results come in PostgreSQL's
binary format: in the text format every ``bytea`` (the stored resources a find returns) travels as
hex, twice its size, and the answer to a group of finds took twice as many turns of the event loop.

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
from record_service.outcomes import as_storage_fault
from record_service.storage import Store

# The server settings for the throw-away clusters the tests, the benches and the planner start (``postgres -o``),
# for a record of millions of rows on this 24 GB machine. shared_buffers measured by bench/db_settings.py on
# 1 M rows (3.7 GB): with the database in the OS page cache 128 MB, 512 MB and 2 GB answer alike (a lookup's
# round trip dominates), but once the OS cache has lost the database (the documents' files push it out in the
# cold regime), 2 GB kept the lookups at 216-231 µs and finds at 286-301 µs against 350-421 and 987-1 102
# with 128-512 MB (see the README). effective_cache_size: the page cache the query planner may count on (half
# the RAM: the documents' files want the rest); work_mem: a find sorts one patient's rows (a few hundred at
# most), the default 4 MB is ample, kept explicit. Not measured: the last two.
CLUSTER_OPTIONS = "-c shared_buffers=2GB -c effective_cache_size=12GB -c work_mem=4MB"
_SCHEMA_LOCK = 0x5E6E0001  # advisory lock: several workers may start at once
_INDEXER_LOCK = 0x5E6E0002  # advisory lock: one audit-journal indexer at a time
_POOL_SIZE = 8  # read connections per worker process
# reads sent together at most: a larger group's answer (a find returns ~10 stored resources) took so many
# turns of the event loop to arrive that find p99 reached 40 ms; groups of 16 arrive side by side on
# several connections (measured, finds: 8 -> 8.4-9.5 k/s p99 18-20 ms, 16 -> 11.2-11.6 k/s p99 15 ms,
# 32 -> 10.1-10.8 k/s p99 36-42 ms, unbounded -> 10.0-10.3 k/s p99 40 ms)
_GROUP_READS = 16
# A server that restarts or goes away: connecting gives up after this long, a read waits this long at most
# for a pool connection (then 503), and the pool retries a lost connection (with back-off) this long before
# giving it up; a read that finds the pool short then grows it again at once, so the service recovers as
# soon as the server is back
_CONNECT_TIMEOUT_S = 5
_POOL_WAIT_S = 5.0
_RECONNECT_S = 5.0
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
        self._connection = psycopg.connect(conninfo(url), autocommit=False, connect_timeout=_CONNECT_TIMEOUT_S)
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
        # no ``check`` callback (a round trip more per read): a connection found broken by a read fails that
        # read (503), is discarded when returned, and replaced in the background
        self._pool = AsyncConnectionPool(conninfo(self.settings.db_url), min_size=_POOL_SIZE, max_size=_POOL_SIZE,
                                         open=False, timeout=_POOL_WAIT_S, reconnect_timeout=_RECONNECT_S,
                                         kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_S})
        await self._pool.open(wait=True, timeout=30)
        self._start_writers(lambda: _PostgresIndexerTransaction(self.settings.db_url))

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
        if len(self._reads) >= _GROUP_READS:
            self._send_reads()
        return await future

    def _send_reads(self) -> None:
        reads, self._reads = self._reads, None
        if not reads:  # sent already, full
            return
        task = asyncio.ensure_future(self._run_reads(reads))
        self._read_tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._read_tasks.discard)

    async def _run_reads(self, reads: list[tuple[str, Sequence[Any], asyncio.Future]]) -> None:
        try:
            results = await self._results(reads)
        except Exception as error:  # no connection, the server went away, or parameters the driver refused:
            results = [error] * len(reads)  # every read of the group fails, none is left waiting
        for (_, _, future), result in zip(reads, results):
            if future.done():  # its request was cancelled
                continue
            if isinstance(result, BaseException):  # a server away or restarting answers 503, not 500
                future.set_exception(as_storage_fault(result))
            else:
                future.set_result(result)


    async def _results(self, reads: list[tuple[str, Sequence[Any], asyncio.Future]]) -> list:
        """Each read's rows, or its own error."""
        groups: dict[str, list[int]] = {}  # reads of one statement, by their place in ``reads``
        for index, (sql, _, _) in enumerate(reads):
            groups.setdefault(sql, []).append(index)
        statements = [statement for members in groups.values() for statement in _statements(reads, members)]
        results: list = [None] * len(reads)
        async with self._pool.connection() as connection:
            try:
                if len(statements) == 1:  # the usual case under load: one statement, no pipeline needed
                    members, batched, sql, params = statements[0]
                    cursors = [(members, batched, await connection.execute(sql, params, binary=True))]
                else:
                    # not prepared in a pipeline: psycopg records a statement as prepared even when an
                    # earlier failure in the pipeline aborted its preparation, and every later use of it
                    # on that connection then fails ("prepared statement ... does not exist")
                    async with connection.pipeline():
                        cursors = [(members, batched,
                                    await connection.execute(sql, params, binary=True, prepare=False))
                                   for members, batched, sql, params in statements]
                for members, batched, cursor in cursors:
                    rows = await cursor.fetchall()
                    if not batched:
                        results[members[0]] = rows
                        continue
                    for member in members:
                        results[member] = []
                    for row in rows:  # (which read, counted from 1, its columns..., its rank)
                        results[members[row[0] - 1]].append(row[1:-1])
            except psycopg.Error:
                # one failed read fails its whole statement (and the rest of a pipeline): run them one by
                # one so that each gets its own answer (and only the failing one its error)
                for index, (sql, params, _) in enumerate(reads):
                    try:
                        results[index] = await (await connection.execute(sql, params, binary=True)).fetchall()
                    except psycopg.Error as error:
                        results[index] = error
        return results

def _statements(reads: list[tuple[str, Sequence[Any], asyncio.Future]],
                members: list[int]) -> list[tuple[list[int], bool, str, list]]:
    """The reads ``members`` (all of one statement) as one statement if they can be batched, else one each:
    (members, whether batched, SQL, parameters).

    Batched, each parameter becomes an array of that parameter's values, one per read, and the statement
    runs once per element (LATERAL). PostgreSQL then plans, executes and answers once for the lot, and
    the worker sends and decodes once (measured: half the worker's cost per read of a pipeline of separate
    statements, for eight or more). The batched statement's text depends on the statement and on the
    parameters' types, not on how many reads it carries, so psycopg converts it once and PostgreSQL
    prepares it once per connection (with one parameter per value, as a VALUES list, each count of reads
    was a new statement: converted again on every use, 9 % of a worker's time, and planned again).

    A batched parameter's type comes from its Python values (str: text, int: int8, …), where a read on
    its own lets PostgreSQL infer it from where it stands. The service's SQL compares its parameters
    with TEXT, BIGINT and INTEGER columns, where both give the same answer; SQL that needs another type
    must cast its parameter.
    """
    sql = reads[members[0]][0]
    columns = list(zip(*(reads[member][1] for member in members)))
    types = tuple(_array_type(column) for column in columns)
    if len(members) == 1 or not columns or None in types:  # alone, or types the values do not tell
        return [([member], False, sql, list(reads[member][1])) for member in members]
    return [(members, True, _unnested(sql, types), [list(column) for column in columns])]


def _array_type(values: Sequence[Any]) -> str | None:
    """The PostgreSQL array type for one parameter's values, or None when they do not tell it."""
    kinds = {type(value) for value in values if value is not None}
    if len(kinds) != 1:
        return None
    return _ARRAY_TYPES.get(kinds.pop())


_ARRAY_TYPES = {str: "text", int: "int8", bool: "bool", float: "float8", bytes: "bytea"}


@lru_cache(maxsize=512)
def _unnested(sql: str, types: tuple[str, ...]) -> str:
    """``sql`` (psycopg placeholders, one per type) run for each element of its parameters' arrays, each row
    tagged with the element's number (from 1) before its columns and followed by its rank.

    Only a statement that orders its rows needs their order kept (by ranking them and sorting the lot);
    one that does not, such as a lookup by key, is joined as it is and its rank left null: measured on a
    document lookup in batches of 16, PostgreSQL then spends 10.4 µs per read instead of 12.4.
    """
    pieces, placeholders = [], 0
    for token in re.split(r"(%%|%s)", sql):  # read left to right: "%%" is a literal "%", "%s" a placeholder
        if token == "%s":
            token = f"_q._a{placeholders}"
            placeholders += 1
        pieces.append(token)
    inner = "".join(pieces)
    arrays = ", ".join(f"%s::{name}[]" for name in types)
    columns = "".join(f"_a{i}, " for i in range(len(types)))
    elements = f"unnest({arrays}) WITH ORDINALITY AS _q({columns}_n)"
    if not _ORDERED.search(inner):
        return f"SELECT _q._n, _r.*, NULL::int8 AS _rank FROM {elements} CROSS JOIN LATERAL ({inner}) AS _r"
    return (f"SELECT _q._n, _r.* FROM {elements} CROSS JOIN LATERAL"
            f" (SELECT _s.*, row_number() OVER () AS _rank FROM ({inner}) AS _s) AS _r ORDER BY _q._n, _r._rank")


_ORDERED = re.compile(r"\bORDER\s+BY\b", re.IGNORECASE)
