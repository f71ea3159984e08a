"""segur.page_cache: a directory's files evicted from the page cache (counted, sized, timed) and residency sampled."""

import os
import time

import pytest

from segur import page_cache


def _corpus(directory, count=20, size=40_000):
    (directory / "ab").mkdir(parents=True)
    paths = []
    for i in range(count):
        path = directory / ("ab" if i % 2 else "") / f"f{i}"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def _cacheable(directory) -> bool:
    """tmpfs (RAM) keeps its pages whatever fadvise says: the test needs a disk-backed directory."""
    probe = directory / "probe"
    probe.write_bytes(os.urandom(8192))
    page_cache.evict([probe])
    gone = page_cache.residency([probe]) == 0.0
    probe.unlink()
    return gone


def test_evict_a_directory_then_residency_is_zero_and_reading_brings_it_back(tmp_path):
    paths = _corpus(tmp_path / "blobs")
    if not _cacheable(tmp_path):
        pytest.skip("this directory's file system keeps its pages in RAM (tmpfs)")
    for path in paths:
        path.read_bytes()
    assert page_cache.residency(paths) > 0.9
    files, size, seconds = page_cache.evict(tmp_path / "blobs")
    assert (files, size) == (20, 20 * 40_000)
    assert seconds >= 0
    for _ in range(20):  # a page still being written back or in an LRU batch: a few more passes at most
        if page_cache.residency(tmp_path / "blobs") == 0.0:
            break
        page_cache.evict(paths)
        time.sleep(0.05)
    assert page_cache.residency(tmp_path / "blobs") == 0.0
    sample = page_cache.residency_sample(paths, sample=5, seed=1)
    assert sample["files"] == 5 and sample["with_no_page_resident"] == 5 and sample["fully_resident"] == 0
    paths[0].read_bytes()
    assert page_cache.resident_pages(paths[0]) == (10, 10)  # 40 000 bytes: 10 pages of 4 KiB
    assert page_cache.residency([paths[0]]) == 1.0


def test_paths_one_file_and_empty_inputs(tmp_path):
    one = tmp_path / "one"
    one.write_bytes(b"x" * 5000)
    assert page_cache.evict(one)[:2] == (1, 5000)
    assert page_cache.evict([])[:2] == (0, 0)
    assert page_cache.evict([tmp_path / "missing"])[:2] == (0, 0)  # vanished meanwhile: skipped
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert page_cache.resident_pages(empty) == (0, 0)
    assert page_cache.residency([]) == 0.0
    assert page_cache.residency_sample(tmp_path, sample=1)["files"] == 1
