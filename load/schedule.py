"""Reading a replay schedule (the simulator's schedule.parquet) as a stream, one shard of it.

Rows are read row group by row group, never all at once. A shard takes the rows of some
patients (by a hash of the INS): every operation on one patient's record, including a
deposit and the retrieve that follows it in the window, stays in one process, and all the
shards together hold every row exactly once.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from load.interactions import replayed
from segur.errors import InputError

COLUMNS = ("offset_s", "operation", "sector", "actor_kind", "actor_id", "facility_id", "patient_ins",
           "document_id", "type_code", "size_bytes", "target_rpps")


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist")

    def holds(self, patient_ins: str) -> bool:
        return self.count == 1 or zlib.crc32(patient_ins.encode()) % self.count == self.index


def schedule_path(path: str | Path) -> Path:
    """The schedule file itself, given it or the result directory that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / "schedule.parquet"
    if not path.is_file():
        raise InputError(f"{path}: no replay schedule (run `segur simulate` first; it writes schedule.parquet)")
    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
        raise InputError(f"{path}: not a Parquet file ({error})") from None
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InputError(f"{path}: not a replay schedule, missing columns {', '.join(missing)}")
    return path


def read_rows(path: str | Path, shard: Shard = Shard(), batch_rows: int = 1024, protocol: str = "dmp") -> Iterator[dict]:
    """The shard's rows in time order, as dicts, streamed a batch at a time; under ``protocol`` ``xds`` the
    professionals' rows only (load.interactions.replayed).

    Batches are small on purpose: turning one into dicts blocks the replay's event loop, and a
    10 ms stall is lateness for every request due meanwhile.
    """
    source = pq.ParquetFile(schedule_path(path))
    for batch in source.iter_batches(batch_size=batch_rows, columns=list(COLUMNS)):
        for row in batch.to_pylist():
            if shard.holds(row["patient_ins"]) and replayed(protocol, row["actor_kind"]):
                yield row


def replay_rows(path: str | Path, shard: Shard, window_s: float, limit_s: float | None,
                protocol: str = "dmp") -> Iterator[dict]:
    """The shard's rows; with ``limit_s``, the window played again and again until that many
    scenario seconds (cut short when the window is longer). Each row carries its ``cycle``."""
    cycle = 0
    while True:
        for row in read_rows(path, shard, protocol=protocol):
            offset = row["offset_s"] + cycle * window_s
            if limit_s is not None and offset >= limit_s:
                return
            row["offset_s"], row["cycle"] = offset, cycle
            yield row
        cycle += 1
        if limit_s is None or window_s <= 0:
            return


def replayed_offsets(path: str | Path, protocol: str = "dmp"):
    """The offsets (s, float64 array) of the rows replayed under ``protocol``."""
    table = pq.read_table(schedule_path(path), columns=["offset_s", "actor_kind"])
    offsets = table.column("offset_s").to_numpy()
    if protocol == "xds":
        kinds = table.column("actor_kind").to_pylist()
        offsets = offsets[[replayed(protocol, kind) for kind in kinds]]
    return offsets


def planned_rows(path: str | Path, window_s: float, limit_s: float | None, protocol: str = "dmp") -> int:
    """How many rows :func:`replay_rows` yields over all shards."""
    offsets = replayed_offsets(path, protocol)
    if limit_s is None:
        return int(offsets.size)
    full_cycles, remainder = divmod(limit_s, window_s)
    return int(full_cycles) * int(offsets.size) + int((offsets < remainder).sum())


@dataclass(frozen=True)
class ScheduleFacts:
    rows: int
    by_operation: dict[str, int]
    window_s: float
    metadata: dict[str, str]


def describe(path: str | Path) -> ScheduleFacts:
    """Counts per operation and the window length, read from the file (operation column only)."""
    path = schedule_path(path)
    source = pq.ParquetFile(path)
    metadata = {k.decode(): v.decode() for k, v in (source.schema_arrow.metadata or {}).items()
                if not k.startswith(b"ARROW")}
    counts: Counter[str] = Counter()
    last = 0.0
    for batch in source.iter_batches(batch_size=65_536, columns=["operation", "offset_s"]):
        counts.update(batch.column("operation").to_pylist())
        if batch.num_rows:
            last = max(last, batch.column("offset_s")[-1].as_py())
    window_s = float(metadata.get("window_minutes", 0)) * 60 or last
    return ScheduleFacts(sum(counts.values()), dict(counts), window_s, metadata)
