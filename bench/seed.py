"""Benchmark of `segur seed`'s bulk path: a throw-away record service, N documents of 120 KB bulk-seeded.

For each back end asked (SQLite, and PostgreSQL when its binaries are on PATH and ``--backends`` names it), a
service is started as the planner starts it (``planner.service.Service``: ``segur serve``, 2 workers, its own
data directory under a temporary folder), a synthetic corpus.parquet of ``--documents`` rows of ``--size`` bytes
(valid INS, RPPS, FINESS; every row needed) is seeded through ``load.seed.seed`` (bulk), and the run reports
documents/s and MB/s, with the CPU seconds per document of the service's processes, of the seeder (this process)
and of a local PostgreSQL, and the machine's CPU: where the time goes on 2 cores shared by both sides. Then the
seed is run again (every document already there: the idempotent path's rate), and the rows and files counted
(no duplicates). Everything is removed at the end (the temporary folder, the PostgreSQL cluster).

    uv run python bench/seed.py                          # 20 000 documents of 120 KB on SQLite
    uv run python bench/seed.py --backends sqlite,postgresql --documents 20000

Bounded: at most 100 000 documents, and the disk must have twice their bytes free. The last line is one JSON
object: ``{"documents_per_s": <the least of the back ends>, "target_documents_per_s": 2000, ...per back end}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.service import ProcessTree, Service  # noqa: E402
from load.seed import seed  # noqa: E402
from segur.identifiers import ins_key, luhn_complete  # noqa: E402

TARGET = 2000
SECTORS = ("hospital", "town_doctor", "lab", "imaging", "pharmacy")


def make_corpus(path: Path, documents: int, size: int, rng: random.Random, prefix: str = "urn:oid:1.2.250.1.999") -> None:
    """A corpus.parquet of ``documents`` rows of ``size`` bytes (masterIdentifiers ``<prefix>.<n>``): 1 000 patients,
    200 authors."""
    def ins() -> str:
        body = (rng.choice("12") + f"{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 95):02d}"
                f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}")
        return body + f"{ins_key(body):02d}"

    patients = [ins() for _ in range(1000)]
    authors = [(luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9))), rng.choice(SECTORS),
                luhn_complete(f"{rng.randint(1, 95):02d}" + "".join(str(rng.randint(0, 9)) for _ in range(6))))
               for _ in range(200)]
    start = datetime(2021, 1, 1)
    chosen = [rng.choice(authors) for _ in range(documents)]
    pq.write_table(pa.table({
        "document_id": [f"{prefix}.{i}" for i in range(documents)],
        "patient_ins": [rng.choice(patients) for _ in range(documents)],
        "type_code": ["11502-2"] * documents,
        "size_bytes": pa.array([size] * documents, pa.int64()),
        "date": pa.array([start + timedelta(minutes=i) for i in range(documents)], pa.timestamp("ms")),
        "author_kind": ["professional"] * documents,
        "author_id": [a[0] for a in chosen],
        "author_sector": [a[1] for a in chosen],
        "facility_id": [a[2] for a in chosen],
    }), path)


def count_rows(service: Service) -> int:
    if service.db and service.db.startswith("postgresql"):
        import psycopg
        with psycopg.connect(service.db) as connection:
            return connection.execute("SELECT count(*) FROM documents").fetchone()[0]
    with sqlite3.connect(service.folder / "data" / "records.sqlite3") as connection:
        return connection.execute("SELECT count(*) FROM documents").fetchone()[0]


def count_files(service: Service) -> int:
    blobs = service.folder / "data" / "blobs"
    return sum(1 for d in blobs.iterdir() if d.is_dir() and not d.name.startswith(".")
               for f in d.iterdir() if not f.name.startswith("."))


def run_one(backend: str, folder: Path, corpus_dir: Path, documents: int, size: int, db: str | None) -> dict:
    key = folder / "signing.key"
    with Service(folder / "service", key, db=db, workers=2) as service:
        me = psutil.Process()
        phases = {}
        for phase in ("first", "again"):
            service_cpu, database = service.tree.cpu_seconds(), (service.database.cpu_seconds()
                                                                 if service.database else 0.0)
            mine = me.cpu_times()
            machine = psutil.cpu_times()
            started = time.perf_counter()
            outcome, _ = seed(corpus_dir, service.url, key, progress=False, log=lambda line: print(line, file=sys.stderr))
            seconds = time.perf_counter() - started
            after = psutil.cpu_times()
            busy = (sum(after) - after.idle - after.iowait) - (sum(machine) - machine.idle - machine.iowait)
            used_by_db = (service.database.cpu_seconds() if service.database else 0.0) - database
            used_by_service = service.tree.cpu_seconds() - service_cpu
            mine_after = me.cpu_times()
            seeder = (mine_after.user + mine_after.system) - (mine.user + mine.system)
            phases[phase] = {
                "documents": outcome.stored, "refused": sum(outcome.failures.values()), "seconds": round(seconds, 2),
                "documents_per_s": round(outcome.stored / seconds, 1),
                "mb_per_s": round(outcome.bytes / 1e6 / seconds, 1),
                "cpu_us_per_document": {
                    "service": round(used_by_service / documents * 1e6), "seeder": round(seeder / documents * 1e6),
                    "postgresql": round(used_by_db / documents * 1e6) if service.database else None,
                    "machine": round(busy / documents * 1e6)},
                "machine_cpu_busy": round(busy / seconds / psutil.cpu_count(), 3),
            }
            print(f"{backend} {phase}: {phases[phase]}", file=sys.stderr)
        rows, files = count_rows(service), count_files(service)
    return {**phases["first"], "again": phases["again"], "rows": rows, "files": files,
            "duplicates": rows - documents + files - documents}


def components(folder: Path, documents: int, size: int) -> dict:
    """CPU µs a document of each stage, measured apart in this process on ``documents`` documents (SQLite):
    the seeder's frame (bytes made, SHA-256, header), the service's parse and checks (the deposit parser, SHA-256,
    SHA-1), the files (:func:`record_service.bulk_load.put_durably`: written, two syncfs; the machine's CPU beside
    it counts the kernel's write-back threads too) and the rows (the batched write, committed)."""
    import asyncio
    import hashlib

    from load import requests
    from load import seed as seeding
    from record_service.bulk_load import _write_all, parse_frame, put_durably
    from segur.bulk_frame import MAGIC, encode_document
    from record_service.settings import Settings, default_sqlite_url
    from record_service.storage import open_store, prepare

    folder.mkdir(parents=True, exist_ok=True)
    make_corpus(folder / "corpus.parquet", documents, size, random.Random(16), prefix="urn:oid:1.2.250.1.998")
    rows = list(seeding._selected_rows(folder / "corpus.parquet", seeding.select_rows(folder / "corpus.parquet", None)))
    made = requests.DocumentBytes()
    batch = 64
    cpu = time.process_time()
    bodies = []
    for start in range(0, len(rows), batch):
        parts = [MAGIC]
        for row in rows[start:start + batch]:
            data = made.content(row["document_id"], row["size_bytes"])
            parts += encode_document(seeding.bulk_resource(row, len(data), seeding._when(row)),
                                     seeding._depositor(row), data, hashlib.sha256(data).hexdigest())
        bodies.append(b"".join(parts))
    frame = time.process_time() - cpu
    cpu = time.process_time()
    parsed = [parse_frame(body, 20 << 20, 500) for body in bodies]
    parse = time.process_time() - cpu
    settings = Settings(db_url=default_sqlite_url(folder / "data"), data_dir=str(folder / "data"),
                        key_file=str(folder / "key"))
    prepare(settings)
    store = open_store(settings)
    files = rows_cpu = machine_files = 0.0

    def busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - times.iowait

    for batch_documents in parsed:
        held: list[str] = []
        cpu, machine = time.process_time(), busy()
        put_durably(store.blobs, {d.deposit.documents[0].sha256: d.deposit.documents[0].data
                                  for d in batch_documents}, held)
        files += time.process_time() - cpu
        machine_files += busy() - machine
        cpu = time.process_time()
        tx = store.connect()
        tx.begin()
        _write_all(batch_documents)(tx)
        tx.commit()
        tx.close()
        rows_cpu += time.process_time() - cpu
        for sha in held:
            store.blobs.holds.release(sha)
    n = len(rows)
    return {"seeder_frame": round(frame / n * 1e6), "service_parse_and_hashes": round(parse / n * 1e6),
            "service_files": round(files / n * 1e6), "machine_during_files": round(machine_files / n * 1e6),
            "service_rows": round(rows_cpu / n * 1e6)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=120_000, help="bytes a document (default 120 000)")
    parser.add_argument("--backends", default="sqlite", help="sqlite, postgresql or both, comma-separated")
    args = parser.parse_args()
    if not 1 <= args.documents <= 100_000:
        parser.error("--documents: 1 to 100 000")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    root = Path(tempfile.mkdtemp(prefix="segur-bench-seed-", dir=os.environ.get("TMPDIR", "/tmp")))
    if shutil.disk_usage(root).free < 2 * args.documents * args.size * len(backends):
        parser.error(f"not enough free disk under {root} for {args.documents} documents of {args.size} bytes")
    results: dict = {}
    cluster = None
    try:
        corpus_dir = root / "run"
        corpus_dir.mkdir()
        make_corpus(corpus_dir / "corpus.parquet", args.documents, args.size, random.Random(15))
        results["components_cpu_us_per_document"] = components(root / "components", min(args.documents, 3000),
                                                                  args.size)
        print(f"components: {results['components_cpu_us_per_document']}", file=sys.stderr)
        shutil.rmtree(root / "components", ignore_errors=True)
        for backend in backends:
            db = None
            if backend == "postgresql":
                from tests.record_service.conftest import PostgresCluster
                cluster = PostgresCluster()
                cluster.start()
                db = cluster.url()
            (corpus_dir / "locations.parquet").unlink(missing_ok=True)
            results[backend] = run_one(backend, root / backend, corpus_dir, args.documents, args.size, db)
            shutil.rmtree(root / backend, ignore_errors=True)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    least = min(r["documents_per_s"] for name, r in results.items() if name in backends)
    print(json.dumps({"documents_per_s": least, "target_documents_per_s": TARGET, "meets_target": least >= TARGET,
                      "documents": args.documents, "size_bytes": args.size, "cores": psutil.cpu_count(),
                      **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
