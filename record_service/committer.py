"""Group commit: one writer thread runs every write of a worker process, many per transaction.

Handlers hand over a write (a function of the open transaction) and await its result. The thread
takes whatever has queued up while the previous transaction committed, runs each write inside its own
savepoint (so a refused one leaves no trace and does not spoil the others), commits once, then answers
all of them. Under load this turns N fsyncs into one; when idle a lone write commits at once.
Answers are given only after the commit, so a 2xx always means durable.

Storage faults answer as faults (see :func:`~record_service.outcomes.storage_fault`): a full disk 507,
anything else that broke underneath (a database restarting or unreachable, an I/O error) 503 with
``Retry-After``; a broken connection is dropped and a new one opened for the next group, so the
service recovers by itself once the fault clears.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from record_service.outcomes import ServiceError, as_storage_fault, storage_fault, unavailable

_log = logging.getLogger("record_service.committer")
T = TypeVar("T")


class WriteTransaction(Protocol):
    """A write connection, as the committer drives it; SQL uses ``?`` placeholders."""

    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class _Item:
    write: Callable[[WriteTransaction], Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    outcome: Any = None
    error: BaseException | None = None


_STOP = object()


class GroupCommitter:
    """The writer thread of one worker process."""

    def __init__(self, connect: Callable[[], WriteTransaction], max_batch: int = 256,
                 on_commit: Callable[[int, float], None] | None = None, name: str = "group-committer"):
        self._connect = connect
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._transaction: WriteTransaction | None = None

    def start(self) -> None:
        self._transaction = self._connect()
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Commit what is queued, then close the connection."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    async def write(self, write: Callable[[WriteTransaction], T]) -> T:
        """Run ``write`` in the next transaction; its result once committed, or its ServiceError."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Item(write, future, loop))
        return await future

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Item] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
                if stopping or len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
        if self._transaction is not None:
            self._transaction.close()

    def _commit(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            tx = self._transaction or self._reconnect()
            tx.begin()
            for item in batch:
                self._run_one(tx, item)
            tx.commit()
        except Exception as error:  # the transaction as a whole failed: nothing of it is stored
            fault = storage_fault(error)
            if fault is None:
                _log.exception("group commit of %d writes failed", len(batch))
            else:  # expected of a full disk or a database away: no traceback
                _log.error("group commit of %d writes failed: %s", len(batch), str(error).strip())
            self._abandon()
            for item in batch:
                # a write's own refusal stays the right answer; everything else was undone with the
                # transaction and must be retried
                if not isinstance(item.error, ServiceError):
                    item.error = storage_fault(error) or unavailable(f"storage unavailable: {error}")  # one each
        else:
            if self._on_commit:
                self._on_commit(len(batch), time.perf_counter() - started)
        self._answer(batch)

    @staticmethod
    def _run_one(tx: WriteTransaction, item: _Item) -> None:
        tx.execute("SAVEPOINT one_write")
        try:
            item.outcome = item.write(tx)
        except Exception as error:  # a refusal (ServiceError) or a bug: either way, undo this write only
            tx.execute("ROLLBACK TO SAVEPOINT one_write")
            item.error = as_storage_fault(error)  # a full disk or an I/O error is the storage's, not the write's
            if not isinstance(item.error, ServiceError):
                _log.exception("write failed")
        tx.execute("RELEASE SAVEPOINT one_write")

    def _abandon(self) -> None:
        try:
            if self._transaction is not None:
                self._transaction.rollback()
        except Exception:  # the connection itself is broken: open a new one next time
            try:
                self._transaction.close()
            except Exception:
                pass
            self._transaction = None

    def _reconnect(self) -> WriteTransaction:
        self._transaction = self._connect()
        return self._transaction

    @staticmethod
    def _answer(batch: list[_Item]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for item in batch:
            by_loop.setdefault(item.loop, []).append(item)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _settle(items: list[_Item]) -> None:
    for item in items:
        if item.future.done():  # the client went away
            continue
        if item.error is not None:
            item.future.set_exception(item.error)
        else:
            item.future.set_result(item.outcome)
