"""The databases' memory settings measured on a record of millions of document rows (issue 15).

Registers ``--rows`` documents (the rows a deposit writes: the document, its submission set, its search values;
the corpus bench's own registration, bench/service.py's ``Corpus.register``) over patients of about ten
documents each, then times the service's own read queries in this process, through the service's own store
(``open_store``): the lookup a retrieve makes (``registry.document``, by id) and a find's (``registry.search``,
20 newest of one patient), each over ids and patients drawn uniformly from the whole record, one at a time
on one event loop (each statement's own cost, no HTTP). For each setting, two regimes: the database file in the
OS page cache (a record that fits in RAM), and evicted from it first (``segur.page_cache.evict``: a record
larger than RAM, the first reads of each page from the disk).

- SQLite: ``mmap_size`` (0, the 256 MiB used so far, the 2 GiB most this SQLite build allows:
  SQLITE_MAX_MMAP_SIZE) × ``cache_size`` (64 MiB, 512 MiB a connection);
- PostgreSQL (``--backends postgresql``): ``shared_buffers`` (128 MB, 512 MB, 2 GB) with
  ``effective_cache_size`` and ``work_mem`` as record_service.postgres_store.CLUSTER_OPTIONS sets them.

Each setting is measured twice, in alternation (the machine is shared): the figures are µs per query, p50 and
p99, and the database's size on disk. The last line is one JSON object.

    uv run python bench/db_settings.py [--rows 2000000] [--queries 20000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import service as service_bench  # noqa: E402  (bench/service.py: the corpus and the PostgreSQL cluster)

from record_service import registry, searches, sqlite_store  # noqa: E402
from record_service.auth import Actor  # noqa: E402
from record_service.blobs import BlobStore  # noqa: E402
from record_service.document_search import document_search  # noqa: E402
from record_service.settings import Settings  # noqa: E402
from record_service.storage import open_store, prepare  # noqa: E402
from segur import page_cache  # noqa: E402
from segur.identifiers import INS_NIR_SYSTEM, luhn_complete  # noqa: E402

SQLITE_SETTINGS = [  # (name, cache KiB, mmap bytes)
    ("mmap 0, cache 64 MiB", 65536, 0),
    ("mmap 256 MiB, cache 64 MiB (before)", 65536, 268435456),
    ("mmap 2 GiB, cache 64 MiB", 65536, 2147418112),
    ("mmap 0, cache 512 MiB", 524288, 0),
    ("mmap 2 GiB, cache 512 MiB", 524288, 2147418112),
]
POSTGRES_SETTINGS = [("shared_buffers 128MB", "128MB"), ("shared_buffers 512MB", "512MB"),
                     ("shared_buffers 2GB", "2GB")]


def build(rows: int, settings: Settings) -> service_bench.Corpus:
    """The rows, pointing at 64 real files (content-addressed: documents may share one)."""
    corpus = service_bench.Corpus(rows * 110_000 / 1e9, luhn_complete("1234567890"[:9]))
    blobs = BlobStore(settings.blob_dir)
    corpus.blobs = blobs
    real = []
    for i in range(64):
        data = corpus.data(i)
        real.append(blobs.put(data))
    import base64
    import hashlib
    sha1 = [base64.b64encode(hashlib.sha1(corpus.data(i)).digest()).decode() for i in range(64)]
    for i in range(len(corpus)):
        corpus.shas[i] = real[i % 64]
        corpus.sha1s[i] = sha1[i % 64]
        corpus.sizes[i] = len(corpus.data(i % 64))
    return corpus


async def time_queries(settings: Settings, corpus, queries: int, seed: int) -> dict:
    store = open_store(settings)
    await store.open()
    rng = random.Random(seed)
    actor = Actor(rpps="10000000000", sector="town_doctor")
    lookups, finds = [], []
    try:
        for i in range(queries // 10):  # warm-up: the interior pages of the indexes, the statement cache
            await registry.document(store, corpus.ids[rng.randrange(len(corpus))], actor)
        for _ in range(queries):
            document_id = corpus.ids[rng.randrange(len(corpus))]
            began = time.perf_counter()
            row = await registry.document(store, document_id, actor)
            lookups.append(time.perf_counter() - began)
            assert row is not None
        for _ in range(queries // 4):
            ins = corpus.patients[rng.randrange(len(corpus.patients))]
            query = document_search(searches.Parameters(
                f"patient.identifier={INS_NIR_SYSTEM}|{ins}&status=current&_count=20".encode())).query
            began = time.perf_counter()
            await registry.search(store, query, actor)
            finds.append(time.perf_counter() - began)
    finally:
        await store.close()

    def summary(values: list[float]) -> dict:
        values.sort()
        return {"mean_us": round(sum(values) / len(values) * 1e6, 1),
                "p50_us": round(values[len(values) // 2] * 1e6, 1),
                "p99_us": round(values[int(0.99 * len(values))] * 1e6, 1)}

    return {"lookup": summary(lookups), "find": summary(finds)}


def database_files(settings: Settings, pg_dir: Path | None) -> list[str]:
    if pg_dir is not None:
        return page_cache.files_under(pg_dir / "data" / "base")
    return [p for p in page_cache.files_under(settings.data_dir) if ".sqlite3" in p]


def measure(backend: str, settings: Settings, corpus, queries: int, configs, apply, pg_dir=None) -> dict:
    results: dict = {}
    for repeat in range(2):
        for name, *values in configs:
            apply(*values)
            for regime in ("cached", "evicted"):
                if regime == "evicted":
                    page_cache.evict(database_files(settings, pg_dir))
                else:  # every page of the database in the OS page cache (it fits in RAM here)
                    for path in database_files(settings, pg_dir):
                        with open(path, "rb") as f:
                            while f.read(1 << 24):
                                pass
                figures = asyncio.run(time_queries(settings, corpus, queries, seed=repeat * 100 + 1))
                results.setdefault(name, {}).setdefault(regime, []).append(figures)
                print(f"{backend:10s} {name:40s} {regime:8s} lookup mean {figures['lookup']['mean_us']:7.1f} "
                      f"p99 {figures['lookup']['p99_us']:7.1f} µs; find mean {figures['find']['mean_us']:7.1f} "
                      f"p99 {figures['find']['p99_us']:7.1f} µs  (load {os.getloadavg()[0]:.1f})", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--backends", default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segur-db-settings-"))
    out: dict = {"rows": args.rows, "queries": args.queries}
    try:
        for backend in args.backends.split(","):
            postgres = None
            db_url = None
            if backend == "postgresql":
                from record_service.postgres_store import CLUSTER_OPTIONS
                postgres = service_bench.Postgres(work, CLUSTER_OPTIONS)
                db_url = postgres.database("rows")
            data_dir = work / backend
            settings = Settings(db_url=db_url or f"sqlite:///{data_dir / 'records.sqlite3'}", data_dir=str(data_dir),
                                key_file=str(work / "key"))
            prepare(settings)
            corpus = build(args.rows, settings)
            began = time.perf_counter()
            registered = corpus.register(settings.db_url, batch=2000)
            if postgres is not None:
                import psycopg
                with psycopg.connect(db_url, autocommit=True) as connection:
                    connection.execute("VACUUM (ANALYZE)")
                    connection.execute("CHECKPOINT")
            size = service_bench._disk_bytes(postgres.dir if postgres else data_dir)
            print(f"{backend:10s} {len(corpus)} rows registered in {time.perf_counter() - began:.0f} s "
                  f"({registered['rows_per_s']:.0f}/s); database {size / 1e9:.2f} GB", flush=True)
            if backend == "sqlite":
                def apply(cache_kib, mmap_bytes):
                    sqlite_store.CACHE_KIB, sqlite_store.MMAP_BYTES = cache_kib, mmap_bytes
                before = (sqlite_store.CACHE_KIB, sqlite_store.MMAP_BYTES)
                try:
                    results = measure(backend, settings, corpus, args.queries, SQLITE_SETTINGS, apply)
                finally:
                    sqlite_store.CACHE_KIB, sqlite_store.MMAP_BYTES = before
            else:
                from record_service.postgres_store import CLUSTER_OPTIONS

                def apply(shared_buffers):
                    postgres.stop()
                    import subprocess
                    options = (f"-p {postgres.port} -k {postgres.dir} -c listen_addresses=127.0.0.1"
                               f" -c max_connections=200 {CLUSTER_OPTIONS} -c shared_buffers={shared_buffers}")
                    subprocess.run([*postgres.prefix, "pg_ctl", "-D", str(postgres.dir / "data"), "-l",
                                    str(postgres.dir / "log"), "-o", options, "-w", "start"], check=True,
                                   capture_output=True)
                results = measure(backend, settings, corpus, args.queries, POSTGRES_SETTINGS, apply, postgres.dir)
                postgres.stop()
            out[backend] = {"rows": len(corpus), "database_bytes": size, "register_rows_per_s":
                            registered["rows_per_s"], "settings": results}
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
