"""The disk under a service's data directory: reads and busy time during a step, from the kernel's counters.

The counters are the block device's (``/proc/diskstats`` through psutil): every program's reads on that
disk count, as ``iostat`` shows them. ``busy_share`` is the share of the step's wall time the device had
at least one request in flight (iostat's %util): near 1 the disk is the queue, though a device that serves
requests in parallel (SSD, NVMe, a virtual disk) may still take more.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


def device_of(path: Path) -> str | None:
    """The name psutil gives the block device holding ``path`` (``vda``, ``nvme0n1``…), or None when it is not
    a local block device (tmpfs, overlay without a device, a path that does not exist)."""
    probe = Path(path)
    while not probe.exists():
        if probe.parent == probe:
            return None
        probe = probe.parent
    device = os.stat(probe).st_dev
    sysfs = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    try:
        name = sysfs.resolve().name
    except OSError:
        return None
    known = psutil.disk_io_counters(perdisk=True) or {}
    return name if name in known else None


@dataclass(frozen=True)
class DiskSample:
    at: float
    reads: int
    read_bytes: int
    busy_ms: int


def sample(device: str | None) -> DiskSample | None:
    if device is None:
        return None
    counters = (psutil.disk_io_counters(perdisk=True) or {}).get(device)
    if counters is None:
        return None
    return DiskSample(time.perf_counter(), counters.read_count, counters.read_bytes, getattr(counters, "busy_time", 0))


UNKNOWN = {"disk_read_iops": None, "disk_read_mb_per_s": None, "disk_busy_share": None}
