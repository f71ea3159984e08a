"""`segur seed` (load/seed.py): which corpus rows it seeds (needed, then --corpus-gb of the others), the bulk path's
idempotence against the planner's own service, the per-deposit path kept, and the CLI."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.seed import make_corpus
from load.client import Locations
from load.seed import seed, select_rows

SEGUR = [sys.executable, "-m", "segur.cli"]


def _corpus(path, sizes, needed=None, seed_order=None):
    columns = {"size_bytes": pa.array(sizes, pa.int64())}
    if needed is not None:
        columns["needed"] = pa.array(needed)
    if seed_order is not None:
        columns["seed_order"] = pa.array(seed_order, pa.int64())
    pq.write_table(pa.table(columns), path)
    return path


def test_without_a_needed_column_every_row_is_seeded(tmp_path):
    selection = select_rows(_corpus(tmp_path / "c.parquet", [10, 20, 30]), None)
    assert selection.order.tolist() == [0, 1, 2] and selection.needed.all() and selection.bytes == 60


def test_needed_rows_first_then_others_until_the_bytes(tmp_path):
    path = _corpus(tmp_path / "c.parquet", [10, 20, 30, 40, 50], needed=[False, True, False, True, False])
    assert select_rows(path, None).order.tolist() == [1, 3]           # the needed ones only
    assert select_rows(path, 0).order.tolist() == [1, 3]              # already past
    chosen = select_rows(path, 75)                                    # 60 needed, then row 0 (70), row 2 (100)
    assert chosen.order.tolist() == [1, 3, 0, 2] and chosen.needed.tolist() == [True, True, False, False]
    assert chosen.bytes == 100
    assert select_rows(path, 10**9).order.tolist() == [1, 3, 0, 2, 4]  # the whole corpus at most


def test_others_in_seed_order_when_given(tmp_path):
    path = _corpus(tmp_path / "c.parquet", [10, 20, 30, 40, 50], needed=[False, True, False, True, False],
                   seed_order=[2, 0, 0, 1, 1])
    assert select_rows(path, 120).order.tolist() == [1, 3, 2, 4]  # others by seed_order: 2, 4, 0
    assert select_rows(path, 10**9).order.tolist() == [1, 3, 2, 4, 0]


def _prefix() -> str:
    """masterIdentifiers of this test's own (the package's service is shared)."""
    return f"urn:oid:1.2.250.1.999.{random.randrange(10**12)}"


@pytest.fixture
def corpus_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    make_corpus(run / "corpus.parquet", 300, 20_000, random.Random(3), prefix=_prefix())
    return run


def _rows(service, run) -> int:
    prefix = pq.read_table(run / "corpus.parquet", columns=["document_id"]).column(0)[0].as_py().rsplit(".", 1)[0]
    with sqlite3.connect(service.folder / "data" / "records.sqlite3") as connection:
        return connection.execute("SELECT count(*) FROM documents WHERE master_id LIKE ?", (prefix + ".%",)
                                  ).fetchone()[0]


def test_bulk_seed_twice_stores_once_and_locates_the_same(service, corpus_run, tmp_path):
    quiet = dict(progress=False, log=lambda line: None)
    first, path = seed(corpus_run, service.url, service.key, **quiet)
    assert first.failures == {} and first.stored == 300 and first.bytes == 300 * 20_000
    located = Locations.load(path)
    assert _rows(service, corpus_run) == 300
    again, _ = seed(corpus_run, service.url, service.key, **quiet)
    assert again.failures == {} and again.stored == 300 and again.existing == 300
    assert _rows(service, corpus_run) == 300
    again_located = Locations.load(path)
    ids = pq.read_table(corpus_run / "corpus.parquet", columns=["document_id"]).column(0).to_pylist()
    assert all(again_located.get(i) == located.get(i) is not None for i in ids)
    assert all(again_located.deposited(i).size == 20_000 and len(again_located.deposited(i).sha256) == 64 for i in ids)


def test_locations_keep_the_needed_rows_and_corpus_bytes_seeds_more(service, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    make_corpus(run / "corpus.parquet", 40, 10_000, random.Random(4), prefix=_prefix())
    table = pq.read_table(run / "corpus.parquet")
    needed = np.zeros(40, dtype=bool)
    needed[::4] = True  # 10 needed
    pq.write_table(table.append_column("needed", pa.array(needed)), run / "corpus.parquet")
    outcome, path = seed(run, service.url, service.key, progress=False, log=lambda line: None, corpus_bytes=250_000)
    assert outcome.failures == {} and outcome.stored == 25 and outcome.bytes == 250_000  # 10 needed + 15 others
    located = Locations.load(path)
    ids = table.column("document_id").to_pylist()
    assert len(located) == 10 and all(located.get(ids[i]) for i in range(0, 40, 4))


def test_the_per_deposit_path_still_seeds(service, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    prefix = _prefix()
    make_corpus(run / "corpus.parquet", 20, 5_000, random.Random(5), prefix=prefix)
    lines: list[str] = []
    outcome, path = seed(run, service.url, service.key, progress=False, log=lines.append, bulk=False, threads=4)
    assert outcome.failures == {} and outcome.stored == 20 and len(Locations.load(path)) == 20
    assert lines[0].startswith("seeded 20 of 20 documents") and "one deposit each" in lines[0]
    again, _ = seed(run, service.url, service.key, progress=False, log=lines.append)  # bulk after: all known
    assert again.existing == 20 and Locations.load(path).get(f"{prefix}.0") is not None


def test_cli_seeds_with_corpus_gb(service, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    make_corpus(run / "corpus.parquet", 12, 5_000, random.Random(6), prefix=_prefix())
    proc = subprocess.run([*SEGUR, "seed", str(run), "--target", service.url, "--key", str(service.key),
                           "--corpus-gb", "0.00002"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "seeded 12 of 12 documents" in proc.stderr and "bulk" in proc.stderr
    proc = subprocess.run([*SEGUR, "seed", "--help"], capture_output=True, text=True, timeout=60)
    assert "--corpus-gb" in proc.stdout and "--no-bulk" in proc.stdout and "Example" in proc.stdout


def test_an_unreachable_service_refuses_every_row_quickly(tmp_path):
    from planner.service import free_port

    run = tmp_path / "run"
    run.mkdir()
    make_corpus(run / "corpus.parquet", 600, 1_000, random.Random(7))
    started = datetime.now()
    outcome, _ = seed(run, f"http://127.0.0.1:{free_port()}", tmp_path / "key", progress=False,
                      log=lambda line: None)
    assert outcome.stored == 0 and sum(outcome.failures.values()) == 600
    assert (datetime.now() - started).total_seconds() < 30


def test_the_load_driver_imports_nothing_of_the_record_service():
    """The driver speaks to the service over HTTP only: the bulk framing and the operator token come from the
    shared packages (segur.bulk_frame, identity.tokens), not from record_service."""
    import subprocess
    import sys
    code = ("import sys, load.seed, load.client, load.locustfile, load.command; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'record_service'); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
