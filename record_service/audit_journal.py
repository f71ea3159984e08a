"""The access history's durable form: append-only journals, indexed into the database later.

Every professional read must be recorded durably before it is answered. Inserting each batch of rows
into the indexed ``audit_events`` table and committing it cost more than the read itself (on SQLite;
on PostgreSQL a third of the read's cost went to it): each row
dirties a page of the per-patient index, and each commit rewrites those pages into the WAL, fsyncs
it, and takes the database's write lock that every worker process shares. So the record of a read is
first a line appended to a journal file owned by one worker process (one ``write`` and one
``fdatasync`` per group of rows, see :class:`JournalWriter`; no lock shared with anyone), and an
indexer copies journal lines into ``audit_events`` in large transactions: in the background about
once a second, and always before the access history is read, so a query sees every acknowledged row.

Journal format: one JSON array per line (the columns of :data:`~record_service.schema.AUDIT_INSERT`).
A worker holds an exclusive ``flock`` on its journal while it writes it; a journal nobody holds is
finished (rotated, or left by a worker that stopped or crashed). How far each journal has been
indexed is kept in ``audit_journal_offsets``, updated in the same transaction as the rows it covers,
so no row is indexed twice and none is skipped, whoever indexes and whenever a process dies. A crash
can leave a torn last line: it was never acknowledged (answers wait for the ``fdatasync``) and is
skipped, as is any line that does not parse.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from record_service.blobs import fsync_directory
from record_service.committer import WriteTransaction
from record_service.outcomes import storage_fault, unavailable
from record_service.schema import AUDIT_INSERT

_log = logging.getLogger("record_service.audit_journal")
_SUFFIX = ".journal"
ROTATE_BYTES = 16 * 1024 * 1024  # a journal this large is closed and a new one started
PASS_BYTES = 64 * 1024 * 1024  # lines copied by one indexing transaction at most (a backlog takes several)

# A whole pass's lines go in as one JSON array that the database unpacks: no Python work per row
_COLUMNS = "patient_ins, at_us, actor_rpps, actor_sector, actor_finess, action, document_id, outcome, detail"
_INSERT_FROM_JSON = {
    "sqlite": (f"INSERT INTO audit_events ({_COLUMNS}) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3,"
               " value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8 FROM json_each(?)"
               " WHERE json_array_length(value) = 9 ORDER BY value ->> 1"),
    "postgresql": (f"WITH inserted AS (INSERT INTO audit_events ({_COLUMNS}) SELECT v ->> 0, (v ->> 1)::bigint,"
                   " v ->> 2, v ->> 3, v ->> 4, v ->> 5, v ->> 6, v ->> 7, v ->> 8"
                   " FROM jsonb_array_elements(?::jsonb) AS v WHERE jsonb_array_length(v) = 9"
                   " ORDER BY (v ->> 1)::bigint RETURNING 1) SELECT count(*) FROM inserted"),
}


def journal_dir(audit_database: str) -> Path:
    """The journals of an access-history database live beside it: ``x.audit.sqlite3`` -> ``x.audit.journals/``."""
    base, _ = os.path.splitext(audit_database)
    return Path(f"{base}.journals")


class AuditJournal:
    """One worker's journal file: :meth:`append` adds rows durably (one ``write``, one ``fdatasync``).

    Used by one thread at a time (the worker's :class:`JournalWriter` thread).
    """

    def __init__(self, directory: Path, rotate_bytes: int = ROTATE_BYTES):
        self.directory = directory
        self._rotate_bytes = rotate_bytes
        self._fd = -1
        self._size = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._open_new()

    def _open_new(self) -> None:
        # names sort by creation time, so journals are indexed oldest first
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            # locked before it gets a name indexers look at: an unlocked journal counts as finished, and an
            # indexer would delete it under us
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(temporary, self.directory / name)
            fsync_directory(self.directory)  # the name survives a crash like the lines written to it
        except BaseException:
            os.close(fd)
            for path in (temporary, self.directory / name):
                path.unlink(missing_ok=True)  # empty: nothing was written to it
            raise
        self._fd, self._size = fd, 0

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append ``rows`` (the columns of ``AUDIT_INSERT``) and make them durable; raises OSError if not."""
        if not rows:
            return
        data = memoryview(b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows))
        if self._fd < 0:
            self._open_new()
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
                self._size += written
            os.fdatasync(self._fd)
        except OSError:
            # what was written may end in a torn line: later lines must not be glued to it, so this
            # journal is finished here (its complete lines are still indexed); the next append opens another
            self._close_file()
            raise
        if self._size >= self._rotate_bytes:
            self._close_file()
            try:
                self._open_new()
            except OSError:  # these rows are durable all the same: the next append opens a journal, or fails
                _log.warning("could not start a new audit journal in %s", self.directory, exc_info=True)

    def _close_file(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the flock: the journal is finished
            self._fd = -1

    def close(self) -> None:
        self._close_file()


class JournalWriter:
    """A worker's access-history rows, appended from its event loop; each waits until it is durable.

    Rows asked while a sync is under way wait for the next one, so a busy worker makes one ``write`` +
    ``fdatasync``, and one hop to its journal thread and back, per group of rows (measured under load:
    about 11 rows a sync, 660 syncs a second per worker). The hop is a plain queue there and one
    ``call_soon_threadsafe`` back: through ``run_in_executor`` it cost the event loop 6 % of its time.
    """

    def __init__(self, directory: Path, on_commit: Callable[[int, float], None] | None = None):
        self._journal = AuditJournal(directory)
        self._on_commit = on_commit
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="audit-journal", daemon=True)
        self._thread.start()
        self._rows: list[tuple] = []
        self._waiters: list[asyncio.Future] = []
        self._syncing = False  # a sync is under way, or about to start this turn
        self._idle: asyncio.Event | None = None  # set when the last sync ends, for close()
        self._closing = False

    async def append(self, row: tuple) -> None:
        """Append one row; returns once it is durable, or raises a ServiceError if it cannot be (507 for a
        full disk, 503 with Retry-After for any other failure: see ``outcomes.storage_fault``)."""
        if self._closing:  # the worker is stopping: its journal takes no more rows
            raise unavailable("the service is stopping")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._rows.append(row)
        self._waiters.append(future)
        if not self._syncing:
            self._syncing = True
            loop.call_soon(self._sync, loop)  # the rows of this whole turn go together
        await future

    def _sync(self, loop: asyncio.AbstractEventLoop) -> None:
        rows, waiters = self._rows, self._waiters
        self._rows, self._waiters = [], []
        self._requests.put((rows, waiters, loop, time.perf_counter()))

    def _write(self) -> None:
        """The journal thread: append each group, then hand the outcome back to the event loop."""
        while (request := self._requests.get()) is not None:
            rows, waiters, loop, started = request
            try:
                self._journal.append(rows)
                error = None
            except Exception as failure:  # the disk's error (OSError), or a bug: either way, answered
                error = failure
            try:
                loop.call_soon_threadsafe(self._synced, loop, error, waiters, started)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _synced(self, loop: asyncio.AbstractEventLoop, error: Exception | None, waiters: list[asyncio.Future],
                started: float) -> None:
        try:
            if error is not None:
                _log.error("appending %d rows to the audit journal failed: %s", len(waiters), error)
                # the read is refused rather than answered unaudited: 507 on a full disk, else 503
                refusal = storage_fault(error) or unavailable(f"storage unavailable: {error}")
            for waiter in waiters:
                if waiter.done():  # its request went away
                    continue
                if error is not None:
                    waiter.set_exception(refusal)
                else:
                    waiter.set_result(None)
            if error is None and self._on_commit:
                self._on_commit(len(waiters), time.perf_counter() - started)
        finally:  # whatever happened above, rows asked meanwhile are written and the writer goes on
            if self._rows:  # asked during this sync: the next one starts at once
                self._sync(loop)
            else:
                self._syncing = False
                if self._idle is not None:
                    self._idle.set()

    async def close(self) -> None:
        """Wait for the rows already asked to be durable, then close the journal (it is finished)."""
        self._closing = True
        while self._syncing:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._requests.put(None)
        await asyncio.to_thread(self._thread.join)
        self._journal.close()


def _complete_lines(path: Path, offset: int, limit: int) -> tuple[bytes, bool, bool]:
    """The complete lines of ``path`` after ``offset`` (about ``limit`` bytes at most); whether the journal
    is done (nobody holds it and it was read to its end); whether ``limit`` stopped the reading."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finished = True  # released at once by the close below; nobody writes a finished journal again
        except BlockingIOError:
            finished = False
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        read, at_end = 0, False
        while read < limit or not any(b"\n" in chunk for chunk in chunks):  # at least one line, if any
            chunk = os.read(fd, max(1, min(1 << 20, limit - read)) if read < limit else 4096)
            if not chunk:
                at_end = True
                break
            chunks.append(chunk)
            read += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[:data.rfind(b"\n") + 1], finished and at_end, not at_end


_OPTIONAL = (str, type(None))
_COLUMN_TYPES = (str, int, str, _OPTIONAL, _OPTIONAL, str, _OPTIONAL, str, _OPTIONAL)  # as in AUDIT_INSERT


def _is_row(value: object) -> bool:
    return (isinstance(value, list) and len(value) == len(_COLUMN_TYPES)
            and all(isinstance(v, t) for v, t in zip(value, _COLUMN_TYPES)))


def _rows(lines: bytes, journal: str) -> list[tuple]:
    """The rows of journal lines, each checked against the table's columns; a damaged line is skipped
    (torn or garbled by a crash, it was never acknowledged) rather than stopping every later pass."""
    rows = []
    for line in lines.splitlines():
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            row = None
        if not _is_row(row):
            _log.warning("skipping a damaged line in audit journal %s (never acknowledged)", journal)
            continue
        rows.append(tuple(row))
    return rows


def _insert(tx: WriteTransaction, chunks: list[tuple[str, bytes]], dialect: str) -> int:
    """Insert the rows of complete journal lines in time order; how many.

    The lines go in as one JSON array that the database unpacks, with no Python work per row; only if
    that fails (a damaged line) are they parsed here one by one and the good rows given to
    ``executemany``.
    """
    lines = [line for _, data in chunks for line in data.splitlines()]
    tx.execute("SAVEPOINT journal_rows")
    try:
        # as text: recent SQLite reads a BLOB argument as its binary JSONB form
        counted = tx.execute(_INSERT_FROM_JSON[dialect], ((b"[" + b",".join(lines) + b"]").decode(),))
        inserted = counted[0][0] if counted else tx.execute("SELECT changes()")[0][0]
        if inserted == len(lines):
            tx.execute("RELEASE SAVEPOINT journal_rows")
            return inserted
    except Exception:  # a damaged line spoils the whole array (sqlite3, psycopg or decoding errors)
        pass
    _log.warning("audit journals: a line did not load as a row; indexing this pass line by line")
    tx.execute("ROLLBACK TO SAVEPOINT journal_rows")
    tx.execute("RELEASE SAVEPOINT journal_rows")
    rows = [row for name, data in chunks for row in _rows(data, name)]  # line by line, skipping the damage
    rows.sort(key=lambda row: row[1])
    if rows:
        tx.executemany(AUDIT_INSERT, rows)
    return len(rows)


def index_journals(tx: WriteTransaction, directory: Path, max_bytes: int = PASS_BYTES,
                   dialect: str = "sqlite") -> tuple[int, bool]:
    """Copy journals' new complete lines into the access history in one transaction: (rows copied, whether
    lines remain because the pass reached ``max_bytes``).

    ``tx.begin()`` must take a lock that indexers of the same database take too (SQLite's write lock; an
    advisory lock on PostgreSQL). Rows are inserted in time order, and finished journals are deleted once
    fully indexed.
    """
    tx.begin()
    try:
        # listed under the write lock: a journal another indexer has an offset for is then either listed
        # here or deleted for good, so the offsets of deleted journals can be forgotten safely
        try:
            paths = sorted(directory / name for name in os.listdir(directory) if name.endswith(_SUFFIX))
        except FileNotFoundError:  # no journal was ever opened here: nothing to index, no offset to forget
            tx.rollback()
            return 0, False
        offsets = dict(tx.execute("SELECT journal, indexed_bytes FROM audit_journal_offsets"))
        chunks: list[tuple[str, bytes]] = []
        finished: list[Path] = []
        budget, more = max_bytes, False
        for path in paths:
            if budget <= 0:
                more = True
                break
            offset = offsets.get(path.name, 0)
            try:
                lines, done, truncated = _complete_lines(path, offset, budget)
            except FileNotFoundError:  # deleted by another indexer since the listing
                continue
            budget -= len(lines)
            more = more or truncated
            if lines:
                chunks.append((path.name, lines))
                tx.execute("INSERT INTO audit_journal_offsets (journal, indexed_bytes) VALUES (?, ?)"
                           " ON CONFLICT (journal) DO UPDATE SET indexed_bytes = excluded.indexed_bytes",
                           (path.name, offset + len(lines)))
            if done:
                finished.append(path)
        names = {path.name for path in paths}  # all listed, read or not
        gone = [(name,) for name in offsets if name not in names]  # their files were deleted after indexing
        for name in gone:
            tx.execute("DELETE FROM audit_journal_offsets WHERE journal = ?", name)
        inserted = _insert(tx, chunks, dialect) if chunks else 0
        tx.commit()
    except BaseException:
        tx.rollback()
        raise
    for path in finished:  # only after the commit: a crash before it leaves the journal to index again
        path.unlink(missing_ok=True)
    return inserted, more


class AuditIndexer:
    """Indexes the journals of one access-history database: every ``interval`` seconds, and on demand."""

    def __init__(self, connect: Callable[[], WriteTransaction], directory: Path, interval: float = 1.0,
                 dialect: str = "sqlite"):
        self._connect = connect
        self._directory = directory
        self._dialect = dialect
        self._interval = interval
        self._lock = threading.Lock()
        self._transaction: WriteTransaction | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-indexer", daemon=True)

    def index(self) -> int:
        """Index now (the caller blocks): afterwards every row acknowledged so far is in the table."""
        with self._lock:
            if self._transaction is None:
                self._transaction = self._connect()
            try:
                total, more = 0, True
                while more:
                    copied, more = index_journals(self._transaction, self._directory, dialect=self._dialect)
                    total += copied
                return total
            except Exception:
                self._transaction.close()  # a broken connection is not reused
                self._transaction = None
                raise

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the background pass and index what remains (the caller's own journal closed first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        try:
            self.index()
        finally:
            with self._lock:
                if self._transaction is not None:
                    self._transaction.close()
                    self._transaction = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.index()
            except Exception as error:  # e.g. the database locked for longer than busy_timeout: try again next time
                if storage_fault(error) is None:
                    _log.exception("indexing the audit journals failed")
                else:  # a full disk, a database away: expected, and retried, so no traceback
                    _log.warning("indexing the audit journals failed: %s", str(error).strip())
