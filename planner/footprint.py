"""What a plan will write and hold, known before it writes anything, and the sampling scale that fits.

A plan seeds its corpus into the record service, then replays the window in steps; every
deposit of a step is stored. Before the plan starts, the scenario's replay is built in memory
(engine and schedule, no file) to know the corpus and the mean deposit; the steps' deposits are
bounded by the most deposits a record service on a machine of this class takes
(``DEPOSITS_PER_S_CEILING``, above every measurement in bench/service.py) over every step. The
sum must fit in the disk budget (``--max-disk-gb``, and never more than half the free disk: the
disk is shared) and the schedule in the available memory; else a smaller scale is picked when
the scale was not given, or the plan refuses with what it needs (InputError: exit 2).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from segur.errors import InputError
from simulator.engine import OPERATIONS, simulate
from simulator.scenario import Scenario
from simulator.schedule import build_replay, busiest_window, fixed_window

DEPOSITS_PER_S_CEILING = 1_000.0   # above the 530-880 deposits/s measured on SQLite and PostgreSQL (bench/service.py)
STORAGE_OVERHEAD = 1.15            # files, database rows and indexes beyond the documents' bytes
_ROW_BYTES = 600                   # the driver's memory for one schedule row (measured order of magnitude)
_SCALES = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005)


@dataclass(frozen=True)
class Footprint:
    """Bytes a plan of ``scale`` writes (``disk_bytes``) and holds in memory (``memory_bytes``)."""

    scale: float
    corpus_documents: int
    corpus_bytes: int                  # the window's corpus (the recovery surge seeds about as much again)
    window_requests: int
    mean_deposit_bytes: float
    steps_bytes: int
    disk_bytes: int
    memory_bytes: int
    history_bytes: int = 0             # the record's history seeded beside the window's corpus (--corpus <N>GB)

    def describe(self) -> str:
        history = f" and {self.history_bytes / 1e9:,.1f} GB of the record's history" if self.history_bytes else ""
        return (f"scale {self.scale:g}: corpus {self.corpus_documents:,} documents ({self.corpus_bytes / 1e9:,.1f} GB)"
                f"{history}, "
                f"up to {self.steps_bytes / 1e9:,.1f} GB of deposits during the steps, "
                f"{self.disk_bytes / 1e9:,.1f} GB in all; window {self.window_requests:,} requests")


def measure(scenario: Scenario, steps: int, step_seconds: float, recovery: bool = True,
            extra_corpus_bytes: int = 0) -> Footprint:
    """The footprint of a plan of ``scenario`` (at its own scale) with ``steps`` steps of ``step_seconds``,
    and (``recovery``) the corpus of an outage's recovery surge, of the same order as the window's (counted
    twice on disk), and ``extra_corpus_bytes`` of the record's history seeded beyond what the window reads
    (``--corpus <N>GB``). The surge's own deposits are checked when it is replayed, against what is left."""
    traffic = simulate(scenario)
    replay = scenario.replay
    window = (fixed_window(traffic, replay.start, replay.minutes) if replay.start
              else busiest_window(traffic, replay.minutes))
    plan = build_replay(traffic, window)
    deposits = plan.rows["operation"] == OPERATIONS.index("deposit")
    mean_deposit = float(plan.rows["size"][deposits].mean()) if deposits.any() else 0.0
    # the documents the window needs are seeded (the rest of the record's history only up to --corpus GB)
    needed = plan.corpus.get("needed")
    sizes = plan.corpus["size"] if needed is None else plan.corpus["size"][needed]
    corpus_bytes = int(sizes.sum())
    corpora = 2 if recovery else 1
    steps_bytes = int(steps * step_seconds * DEPOSITS_PER_S_CEILING * mean_deposit)
    return Footprint(scenario.scale, int(sizes.size), corpus_bytes, int(plan.rows["offset_s"].size),
                     mean_deposit, steps_bytes,
                     int((corpora * corpus_bytes + extra_corpus_bytes + steps_bytes) * STORAGE_OVERHEAD),
                     int((plan.rows["offset_s"].size + sizes.size) * _ROW_BYTES), extra_corpus_bytes)


@dataclass(frozen=True)
class Budget:
    """What a plan may use, in bytes: ``disk`` (``--max-disk-gb``, at most half the ``free`` disk) and half
    the available ``memory``."""

    disk: int
    free: int
    memory: int
    max_disk_gb: float

    def describe(self) -> str:
        return (f"budget {self.disk / 1e9:,.1f} GB of disk (--max-disk-gb {self.max_disk_gb:g}, at most half of the "
                f"{self.free / 1e9:,.0f} GB free) and half of {self.memory / 1e9:,.1f} GB of available memory")


def budget(folder: Path, max_disk_gb: float) -> Budget:
    """The budget of a plan written under ``folder`` (read once: free disk and memory now)."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    return Budget(min(int(max_disk_gb * 1e9), free // 2), free, psutil.virtual_memory().available, max_disk_gb)


def fits(footprint: Footprint, room: Budget) -> bool:
    return footprint.disk_bytes <= room.disk and footprint.memory_bytes <= room.memory // 2


def choose(scenario: Scenario, scale_given: bool, steps: int, step_seconds: float, room: Budget,
           log, recovery: bool = True, extra_corpus_bytes: int = 0) -> tuple[Scenario, Footprint]:
    """The scenario at a scale whose plan fits in ``room``; raises InputError (exit 2) when none does or the
    given one does not."""
    limits = room.describe()
    footprint = measure(scenario, steps, step_seconds, recovery, extra_corpus_bytes)
    if fits(footprint, room):
        return scenario, footprint
    if scale_given:
        raise InputError(f"this plan does not fit this machine: {footprint.describe()}; {limits}. "
                         "Use a smaller --scale (a sample of the nation: the verdict stays national) "
                         "or raise --max-disk-gb.")
    for scale in (s for s in _SCALES if s < scenario.scale):
        smaller = scenario.with_overrides(scale=scale)
        footprint = measure(smaller, steps, step_seconds, recovery, extra_corpus_bytes)
        if fits(footprint, room):
            log(f"sampling scale {scale:g} (the scenario's {scenario.scale:g} would not fit: {limits}); "
                f"{footprint.describe()}")
            return smaller, footprint
    raise InputError(f"no sampling scale fits this machine: {footprint.describe()}; {limits}. "
                     "Free some disk or raise --max-disk-gb.")
