"""The access history's journals: every acknowledged row reaches the table exactly once, whoever indexes,
whenever a writer stops or dies, and whatever a crash leaves at the end of a journal."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from record_service import schema
from record_service.audit_journal import AuditIndexer, AuditJournal, JournalWriter, index_journals, journal_dir
from record_service.outcomes import ServiceError
from record_service.sqlite_store import _run_schema, _SqliteWriteTransaction


@pytest.fixture
def audit_db(tmp_path) -> str:
    path = str(tmp_path / "records.audit.sqlite3")
    _run_schema(path, schema.audit_statements("sqlite"))
    return path


def _row(n: int, patient: str = "123456789012345") -> tuple:
    return (patient, 1_000_000 + n, "10000000001", "town_doctor", None, "read", f"{n:032x}", "success", None)


def _append(journal: AuditJournal, rows: list[tuple]) -> None:
    journal.append(rows)


def _index(audit_db: str, max_bytes: int = 1 << 26) -> int:
    tx = _SqliteWriteTransaction(audit_db)
    try:
        total, more = 0, True
        while more:
            copied, more = index_journals(tx, journal_dir(audit_db), max_bytes)
            total += copied
        return total
    finally:
        tx.close()


def _table(audit_db: str) -> list[int]:
    with sqlite3.connect(audit_db) as connection:
        return [at - 1_000_000 for (at,) in connection.execute("SELECT at_us FROM audit_events ORDER BY id")]


def test_rows_are_indexed_once_and_a_live_journal_stays(audit_db):
    journal = AuditJournal(journal_dir(audit_db))
    _append(journal, [_row(n) for n in range(5)])
    assert _index(audit_db) == 5
    _append(journal, [_row(n) for n in range(5, 8)])
    assert _index(audit_db) == 3
    assert _index(audit_db) == 0
    assert _table(audit_db) == list(range(8))
    assert len(list(journal_dir(audit_db).glob("*.journal"))) == 1  # still held by its writer
    journal.close()
    assert _index(audit_db) == 0
    assert list(journal_dir(audit_db).iterdir()) == []  # finished and fully indexed: deleted
    assert _table(audit_db) == list(range(8))


def test_rows_are_inserted_in_time_order_across_journals(audit_db):
    first, second = AuditJournal(journal_dir(audit_db)), AuditJournal(journal_dir(audit_db))
    _append(first, [_row(n) for n in (0, 2, 4)])
    _append(second, [_row(n) for n in (1, 3, 5)])
    _index(audit_db)
    assert _table(audit_db) == [0, 1, 2, 3, 4, 5]
    first.close()
    second.close()


def test_a_torn_or_damaged_line_is_skipped_and_the_rest_indexed(audit_db):
    journal = AuditJournal(journal_dir(audit_db))
    _append(journal, [_row(0), _row(1)])
    [path] = journal_dir(audit_db).glob("*.journal")
    with open(path, "ab") as f:
        f.write(b'["not", "a row"]\n')  # damaged (never acknowledged)
    _append(journal, [_row(2)])
    journal.close()
    with open(path, "ab") as f:
        f.write(b'["123456789012345", 10')  # a crash in the middle of a write: no newline
    assert _index(audit_db) == 3
    assert _table(audit_db) == [0, 1, 2]
    assert not path.exists()


def test_a_crash_between_commit_and_delete_indexes_nothing_twice(audit_db, monkeypatch):
    journal = AuditJournal(journal_dir(audit_db))
    _append(journal, [_row(n) for n in range(4)])
    journal.close()
    real_unlink = Path.unlink

    def crash(self, missing_ok=False):
        raise KeyboardInterrupt("killed after the commit")

    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        _index(audit_db)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert _index(audit_db) == 0
    assert _table(audit_db) == [0, 1, 2, 3]
    assert list(journal_dir(audit_db).iterdir()) == []
    _index(audit_db)  # and the offset of the deleted journal is forgotten
    with sqlite3.connect(audit_db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM audit_journal_offsets").fetchone() == (0,)


def test_rotation_starts_new_journals_and_loses_nothing(audit_db):
    journal = AuditJournal(journal_dir(audit_db), rotate_bytes=400)
    for n in range(20):
        _append(journal, [_row(n)])
    assert len(list(journal_dir(audit_db).glob("*.journal"))) > 3
    _index(audit_db)
    assert len(list(journal_dir(audit_db).glob("*.journal"))) == 1  # the rotated ones are done
    journal.close()
    _index(audit_db)
    assert _table(audit_db) == list(range(20))


def test_concurrent_indexers_copy_each_row_once(audit_db):
    journals = [AuditJournal(journal_dir(audit_db), rotate_bytes=2000) for _ in range(3)]
    connect = lambda: _SqliteWriteTransaction(audit_db)  # noqa: E731
    indexers = [AuditIndexer(connect, journal_dir(audit_db)) for _ in range(3)]
    stop = threading.Event()

    def keep_indexing(indexer: AuditIndexer) -> None:
        while not stop.is_set():
            indexer.index()

    threads = [threading.Thread(target=keep_indexing, args=(i,)) for i in indexers]
    for thread in threads:
        thread.start()
    for n in range(300):
        _append(journals[n % 3], [_row(n)])
    for journal in journals:
        journal.close()
    stop.set()
    for thread in threads:
        thread.join(30)
    indexers[0].stop()
    assert sorted(_table(audit_db)) == list(range(300))
    assert list(journal_dir(audit_db).iterdir()) == []


def test_a_failed_write_finishes_the_journal_and_the_next_batch_opens_another(audit_db, monkeypatch):
    journal = AuditJournal(journal_dir(audit_db))
    _append(journal, [_row(0)])
    real_fdatasync = os.fdatasync

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError):
        _append(journal, [_row(1)])
    monkeypatch.setattr(os, "fdatasync", real_fdatasync)
    _append(journal, [_row(2)])
    assert len(list(journal_dir(audit_db).glob("*.journal"))) == 2
    journal.close()
    _index(audit_db)
    assert 0 in _table(audit_db) and 2 in _table(audit_db)


def test_a_backlog_is_indexed_in_bounded_passes_without_loss(audit_db):
    journals = [AuditJournal(journal_dir(audit_db)) for _ in range(2)]
    for n in range(400):
        _append(journals[n % 2], [_row(n)])
    journals[0].close()  # one finished, one live
    tx = _SqliteWriteTransaction(audit_db)
    try:
        passes, total, more = 0, 0, True
        while more:
            copied, more = index_journals(tx, journal_dir(audit_db), max_bytes=3000)
            total += copied
            passes += 1
    finally:
        tx.close()
    assert passes >= 5 and total == 400  # 44 KB of lines, a few KB a pass
    assert sorted(_table(audit_db)) == list(range(400))
    assert len(list(journal_dir(audit_db).glob("*.journal"))) == 1  # the finished one deleted, once read through
    journals[1].close()


def test_a_parseable_but_wrong_line_is_skipped_and_indexing_goes_on(audit_db):
    journal = AuditJournal(journal_dir(audit_db))
    _append(journal, [_row(0)])
    [path] = journal_dir(audit_db).glob("*.journal")
    with open(path, "ab") as f:
        f.write(b'[null, "x", null, null, null, null, null, null, null]\n')
    _append(journal, [_row(1)])
    assert _index(audit_db) == 2
    _append(journal, [_row(2)])
    assert _index(audit_db) == 1  # later passes are not stuck on it
    assert _table(audit_db) == [0, 1, 2]
    journal.close()


def test_a_journal_that_cannot_be_named_leaves_no_descriptor_or_file(audit_db, monkeypatch):
    directory = journal_dir(audit_db)
    journal = AuditJournal(directory)
    journal.close()
    before = len(os.listdir("/proc/self/fd"))

    def failing(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("record_service.audit_journal.fsync_directory", failing)
    for _ in range(5):
        with pytest.raises(OSError):
            _append(journal, [_row(0)])
    assert len(os.listdir("/proc/self/fd")) == before
    assert [p for p in directory.iterdir() if p.name.startswith(".")] == []


# --- the event loop's side: JournalWriter -----------------------------------------------------

def test_rows_asked_together_share_a_sync_and_each_waits_until_durable(audit_db, monkeypatch):
    syncs: list[int] = []
    real_append = AuditJournal.append

    def counted_append(journal, rows):
        syncs.append(len(rows))
        real_append(journal, rows)

    monkeypatch.setattr(AuditJournal, "append", counted_append)
    commits: list[int] = []

    async def scenario():
        writer = JournalWriter(journal_dir(audit_db), on_commit=lambda n, _: commits.append(n))
        try:
            await asyncio.gather(*(writer.append(_row(n)) for n in range(50)))
            # every answer came after its row was written: all 50 are in the journal now
            assert _index(audit_db) == 50
            for n in range(50, 60):  # one at a time: a sync each
                await writer.append(_row(n))
        finally:
            await writer.close()

    asyncio.run(scenario())
    assert syncs[0] == 50 and sum(syncs) == 60 and len(syncs) == 11
    assert commits == syncs
    assert _index(audit_db) == 10
    assert sorted(_table(audit_db)) == list(range(60))


def test_rows_asked_during_a_sync_go_in_the_next_one(audit_db, monkeypatch):
    syncs: list[int] = []
    real_append = AuditJournal.append
    release = threading.Event()

    def slow_append(journal, rows):
        syncs.append(len(rows))
        if len(syncs) == 1:
            release.wait(5)  # the first sync is slow: rows pile up behind it
        real_append(journal, rows)

    monkeypatch.setattr(AuditJournal, "append", slow_append)

    async def scenario():
        writer = JournalWriter(journal_dir(audit_db))
        try:
            first = asyncio.ensure_future(writer.append(_row(0)))
            await asyncio.sleep(0.05)
            later = [asyncio.ensure_future(writer.append(_row(n))) for n in range(1, 8)]
            await asyncio.sleep(0.05)
            assert not first.done() and not any(task.done() for task in later)
            release.set()
            await asyncio.gather(first, *later)
        finally:
            await writer.close()

    asyncio.run(scenario())
    assert syncs == [1, 7]
    assert _index(audit_db) == 8


def test_a_failed_sync_answers_503_to_its_rows_only_and_the_next_rows_are_kept(audit_db, monkeypatch):
    real_append = AuditJournal.append
    failures = iter([OSError(5, "Input/output error")])

    def failing_once(journal, rows):
        error = next(failures, None)
        if error is not None:
            raise error
        real_append(journal, rows)

    monkeypatch.setattr(AuditJournal, "append", failing_once)

    async def scenario():
        writer = JournalWriter(journal_dir(audit_db))
        try:
            results = await asyncio.gather(*(writer.append(_row(n)) for n in range(3)), return_exceptions=True)
            assert all(isinstance(r, ServiceError) and r.status == 503 for r in results)
            assert all(r.headers.get("Retry-After") == "1" for r in results)
            await writer.append(_row(3))
        finally:
            await writer.close()

    asyncio.run(scenario())
    assert _index(audit_db) == 1
    assert _table(audit_db) == [3]


def test_close_waits_for_the_rows_already_asked(audit_db, monkeypatch):
    real_append = AuditJournal.append

    def slow_append(journal, rows):
        time.sleep(0.2)
        real_append(journal, rows)

    monkeypatch.setattr(AuditJournal, "append", slow_append)

    async def scenario():
        writer = JournalWriter(journal_dir(audit_db))
        pending = [asyncio.ensure_future(writer.append(_row(n))) for n in range(4)]
        await asyncio.sleep(0)  # asked: their sync starts
        await writer.close()
        assert all(task.done() and task.exception() is None for task in pending)

    asyncio.run(scenario())
    assert _index(audit_db) == 4
    assert list(journal_dir(audit_db).glob("*.journal")) == []  # closed, so finished: deleted once indexed


def test_a_failing_commit_callback_does_not_stop_the_writer(audit_db):
    calls: list[int] = []

    def failing_callback(rows: int, seconds: float) -> None:
        calls.append(rows)
        raise RuntimeError("metrics are broken")

    async def scenario():
        writer = JournalWriter(journal_dir(audit_db), on_commit=failing_callback)
        try:
            await asyncio.wait_for(writer.append(_row(0)), 5)
            await asyncio.wait_for(asyncio.gather(*(writer.append(_row(n)) for n in range(1, 4))), 5)
        finally:
            await asyncio.wait_for(writer.close(), 5)

    asyncio.run(scenario())
    assert calls == [1, 3]
    assert _index(audit_db) == 4


def test_rows_asked_once_closing_has_begun_are_refused_not_left_waiting(audit_db):
    async def scenario():
        writer = JournalWriter(journal_dir(audit_db))
        first = asyncio.ensure_future(writer.append(_row(0)))
        await asyncio.sleep(0)  # its sync starts
        closing = asyncio.ensure_future(writer.close())
        await asyncio.sleep(0)
        with pytest.raises(ServiceError) as refused:
            await asyncio.wait_for(writer.append(_row(1)), 5)
        assert refused.value.status == 503
        await asyncio.wait_for(closing, 5)
        await first  # asked before closing began: written

    asyncio.run(scenario())
    assert _index(audit_db) == 1
    assert _table(audit_db) == [0]
