"""The corpus a plan measures against: hot, cold, or a size in GB.

The national record holds over a billion documents, almost all of them cold: a capacity measured while
every document sits in the page cache is only true while the whole record fits in RAM. A plan names the
regime it measures (``segur plan --corpus``):

- ``hot``: the documents the window reads are seeded, and stay in the page cache (they were just written);
- ``cold`` (the default for a service started here: the regime the national service lives in): the same
  documents, but every file of the seeded corpus is evicted from the page cache
  (``posix_fadvise(DONTNEED)``, :mod:`segur.page_cache`) before each step and again each time the step's
  replay loops over the window, so a read of a document older than the window is a disk read, as it is in a
  record far larger than RAM; what the window deposits stays cached (recent documents are the hot set).
  The database's own files are not evicted: its index is taken as held in memory (see the README's DB
  settings);
- ``<N>`` or ``<N>GB``: a cold corpus of N GB really on disk: the needed documents and then the rest of the
  record's history (``corpus.parquet``'s other rows, never read by the window) up to N GB, the documents the
  window reads kept cold as above. Past the RAM it is really larger than memory (the file system's metadata,
  the database and the disk's layout at that size included): the ``cold`` regime is validated against it
  (README). The history is seeded once; a larger size adds to it.

The window is looped when a step outlasts it: without the keeper, a second pass would find in the page cache
what the first read, which a national record, whose hour reads other documents than the last, never does.

A list (``--corpus hot,cold``) searches each regime on the same service, the smaller corpora first;
``plan.json``'s ``capacity_by_corpus`` holds each one's capacity, retrieve p99 and disk reads.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from load.seed import seed
from planner.service import Service
from segur import page_cache
from segur.errors import InputError

_GB = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:gb|g)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Regime:
    """One corpus a plan measures: ``name`` (hot, cold, or ``<N>GB``), ``bytes`` seeded beyond the needed
    documents' (None: only those), ``evict`` (keep the seeded files out of the page cache during the steps)."""

    name: str
    bytes: int | None = None
    evict: bool = False


def parse(text: str, option: str = "--corpus") -> list[Regime]:
    """``hot``, ``cold``, ``<N>`` or ``<N>GB``, comma-separated; ordered for seeding (smaller corpora first,
    hot before cold on the same corpus). Raises InputError naming the bad part."""
    regimes: list[Regime] = []
    for part in (p.strip() for p in text.split(",")):
        if part.lower() in ("hot", "cold"):
            regime = Regime(part.lower(), None, part.lower() == "cold")
        elif (match := _GB.match(part)) and float(match.group(1)) > 0:
            gb = float(match.group(1))
            regime = Regime(f"{gb:g}GB", int(gb * 1e9), True)
        else:
            raise InputError(f"{option} {text!r}: {part!r} is not hot, cold or a size in GB (e.g. 4 or 30GB)")
        if regime.name in (r.name for r in regimes):
            raise InputError(f"{option} {text!r}: {regime.name} is named twice")
        regimes.append(regime)
    if not regimes:
        raise InputError(f"{option}: expected hot, cold or a size in GB")
    return sorted(regimes, key=lambda r: (r.bytes or 0, r.evict))


def refuse_remote_cold(regimes: list[Regime], remote: bool) -> None:
    """Raises InputError when a cold regime is asked of a service not started here (``remote``): its files
    cannot be evicted from this machine's page cache."""
    if remote and any(r.evict for r in regimes):
        raise InputError("--corpus cold or a size needs the service started here (its files are evicted from this "
                         "machine's page cache); with --target use --corpus hot")


def main_regime(regimes: list[Regime]) -> Regime:
    """The regime the verdict is about: cold when searched (the national service's), else the first asked."""
    return next((r for r in regimes if r.name == "cold"), regimes[0])


def corpus_files(data_dir: Path) -> list[str]:
    """The document files under a service's data directory (``blobs/``, its temporary files left out)."""
    blobs = data_dir / "blobs"
    files = []
    for root, dirs, names in os.walk(blobs):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(os.path.join(root, n) for n in names if not n.startswith("."))
    return files


class ColdKeeper:
    """Keeps a seeded corpus out of the page cache while a step runs: evicts its files at the start, then every
    ``period_s`` seconds (the wall time of one pass over the window, so each pass's reads of older documents
    are disk reads), in a thread. ``evictions`` and ``evicted_s`` say what it cost."""

    def __init__(self, files: list[str], period_s: float):
        self.files, self.period_s = files, max(period_s, 0.2)
        self.evictions, self.evicted_s = 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cold-keeper", daemon=True)

    def _evict(self, first: bool = False) -> None:
        started = time.perf_counter()
        # the corpus files were fsynced when seeded: clean pages, dropped at once (no global sync mid-step)
        page_cache.evict(self.files, passes=2 if first else 1, sync=first)
        self.evicted_s += time.perf_counter() - started
        self.evictions += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._evict()

    def __enter__(self) -> "ColdKeeper":
        self._evict(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class Seeded:
    """A regime's corpus once seeded: its ``documents`` and ``bytes`` (the document files under the service's
    data directory; for a --target service, what the seed deposited) and the ``files`` the window reads (the
    documents it needs: kept cold or warmed; empty when the service is not on this machine)."""

    regime: Regime
    documents: int
    bytes: int
    files: list[str]

    def figures(self) -> dict:
        """plan.json's ``corpus``: documents, bytes, this machine's RAM (bytes) and the regime."""
        return {"documents": self.documents, "bytes": self.bytes, "ram_bytes": ram_bytes(), "regime": self.regime.name,
                "larger_than_ram": self.bytes > ram_bytes()}

    def warm(self) -> None:
        """Read every file once, so that the corpus is in the page cache (the hot regime)."""
        for path in self.files:
            try:
                with open(path, "rb", buffering=0) as handle:
                    while handle.read(1 << 20):
                        pass
            except OSError:
                continue


def seed_regime(regime: Regime, result_dir: Path, service: Service, log, previous: Seeded | None = None) -> Seeded:
    """Seed ``regime``'s corpus into ``service`` (idempotent: what is there already is not sent again) and
    describe it: the ``previous`` regime's corpus files and the ones this seeding added (not what the steps
    between deposited). Raises InputError when a cold regime is asked of a service not started here."""
    refuse_remote_cold([regime], service.process is None)
    data = service.folder / "data"
    before = set(corpus_files(data)) if previous is not None and service.process is not None else set()
    outcome, _ = seed(result_dir, service.url, service.key, log=log, corpus_bytes=regime.bytes)
    if outcome.failures:
        log(f"warning: {sum(outcome.failures.values())} corpus documents were refused while seeding")
    if service.process is None:
        return Seeded(regime, outcome.stored, outcome.bytes, [])
    after = corpus_files(data)
    if previous is None:
        documents, size, read = len(after), sum(os.path.getsize(path) for path in after), after
    else:  # the window reads what the first seeding stored; the rest of the history is never read
        new = set(after) - before
        documents, size = previous.documents + len(new), previous.bytes + sum(os.path.getsize(p) for p in new)
        read = previous.files
    log(f"corpus ({regime.name}): {documents:,} document files, {size / 1e9:,.2f} GB "
        f"({size / ram_bytes():.1%} of this machine's RAM)")
    return Seeded(regime, documents, size, read)


def ram_bytes() -> int:
    """This machine's RAM, bytes."""
    return int(psutil.virtual_memory().total)
