"""ContentHolds and BlobStore: who may remove a shared file, within a process and across processes."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from record_service.blobs import BlobStore, ContentHolds

SHA = hashlib.sha256(b"shared").hexdigest()


def _hold_in_child(root: str, sha: str, held: multiprocessing.Event, done: multiprocessing.Event) -> None:
    holds = BlobStore(root).holds
    holds.hold(sha)
    held.set()
    done.wait(30)
    holds.release(sha)


def test_a_claim_fails_while_another_process_holds_the_content(tmp_path):
    store = BlobStore(tmp_path)
    context = multiprocessing.get_context("spawn")  # a fresh process, as a second worker is
    held, done = context.Event(), context.Event()
    child = context.Process(target=_hold_in_child, args=(str(tmp_path), SHA, held, done))
    child.start()
    try:
        assert held.wait(30)
        assert not store.holds.claim(SHA)
        done.set()
        child.join(30)
        assert child.exitcode == 0
        assert store.holds.claim(SHA)  # released by the other process: now it can be claimed
        store.holds.end_claim(SHA)
    finally:
        done.set()
        child.join(30)


def test_within_a_process_the_last_refused_holder_claims(tmp_path):
    holds = ContentHolds(tmp_path / ".holds")
    holds.hold(SHA)
    holds.hold(SHA)
    assert not holds.claim(SHA)  # not a holder itself (a delete): two deposits hold it
    assert not holds.claim(SHA, holding=True)  # the first refused one: the other still holds it
    assert holds.claim(SHA, holding=True)  # the last one
    holds.end_claim(SHA)
    holds.hold(SHA)
    holds.release(SHA)
    assert holds.claim(SHA)
    holds.end_claim(SHA)


def test_a_claim_keeps_new_holders_waiting_until_it_ends(tmp_path):
    holds = ContentHolds(tmp_path / ".holds")
    assert holds.claim(SHA)
    entered = threading.Event()

    def holder() -> None:
        holds.hold(SHA)
        entered.set()

    thread = threading.Thread(target=holder)
    thread.start()
    time.sleep(0.2)
    assert not entered.is_set(), "a deposit held the content while its file was being removed"
    holds.end_claim(SHA)
    assert entered.wait(10)
    thread.join(10)
    assert not holds.claim(SHA)
    holds.release(SHA)


def test_hold_stores_the_file_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    store = BlobStore(tmp_path)
    store.hold(b"shared", SHA)
    assert store.get(SHA) == b"shared"
    store.holds.release(SHA)

    other = hashlib.sha256(b"other").hexdigest()
    real_write = os.write

    def full_disk(fd: int, data) -> int:
        real_write(fd, bytes(data[:3]))  # part of it lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError) as failure:
        store.hold(b"other", other)
    monkeypatch.undo()
    assert failure.value.errno == errno.ENOSPC
    assert list(Path(tmp_path).glob(f"{other[:2]}/*")) == [], "a half-written file stayed"
    assert store.holds.claim(other)  # the failed hold was released
    store.holds.end_claim(other)
