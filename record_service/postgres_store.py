"""The PostgreSQL back end, selected by a ``postgresql://`` URL; same tables, same rules, same tests.

Reads go through an async connection pool (psycopg 3) so the event loop never waits on the network;
writes go through the group committers' own synchronous connections (one for the record's writes,
one for access-history rows), with ``executemany`` (pipelined by psycopg) for audit rows. Transactions use the default READ COMMITTED isolation: every write
re-reads what it depends on inside the transaction, and uniqueness is enforced by constraints.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from record_service import schema
from record_service.committer import GroupCommitter
from record_service.storage import Store

_SCHEMA_LOCK = 0x5E6E0001
_POOL_SIZE = 8  # read connections per worker process  # advisory lock: several workers may start at once


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


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, settings, on_commit=None):
        super().__init__(settings, on_commit)
        self._pool: AsyncConnectionPool | None = None

    def create_schema(self) -> None:
        with psycopg.connect(conninfo(self.settings.db_url), autocommit=False) as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in schema.statements("postgresql"):
                connection.execute(statement)
            connection.commit()

    async def open(self) -> None:
        self.create_schema()
        # opened in full at start: connections are not set up while requests wait for them (each find is
        # one query, so 8 per worker keeps a 2-core machine's CPUs busy without a backend per request)
        self._pool = AsyncConnectionPool(conninfo(self.settings.db_url), min_size=_POOL_SIZE, max_size=_POOL_SIZE,
                                         open=False, kwargs={"autocommit": True})
        await self._pool.open(wait=True, timeout=30)
        connect = lambda: _PostgresWriteTransaction(self.settings.db_url)  # noqa: E731
        self.committer = GroupCommitter(connect, schema.AUDIT_INSERT, self.settings.max_batch, self._on_commit,
                                        name="record-committer")
        self.audit_committer = GroupCommitter(connect, schema.AUDIT_INSERT, self.settings.max_batch, self._on_commit,
                                              name="audit-committer")
        self.committer.start()
        self.audit_committer.start()

    async def close(self) -> None:
        await super().close()
        if self._pool is not None:
            await self._pool.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(to_psycopg(sql), params)
            return await cursor.fetchall()
