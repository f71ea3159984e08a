"""The corpus regimes of a plan (planner.corpus), the disk counters (planner.disk), and their report."""

import os
import time

import pytest

from planner import corpus, disk, report
from planner.corpus import ColdKeeper, Regime
from planner.steps import _disk_figures
from segur import page_cache
from segur.errors import InputError


def test_regimes_are_parsed_and_ordered_smaller_corpus_first():
    regimes = corpus.parse("4GB, cold,hot")
    assert [r.name for r in regimes] == ["hot", "cold", "4GB"]
    assert [r.evict for r in regimes] == [False, True, True]
    assert regimes[2].bytes == 4_000_000_000
    assert corpus.parse("0.5")[0] == Regime("0.5GB", 500_000_000, True)
    assert corpus.main_regime(regimes).name == "cold"          # the national regime carries the verdict
    assert corpus.main_regime(corpus.parse("hot,2")).name == "hot"


@pytest.mark.parametrize("text", ["", "warm", "hot,hot", "-3GB", "0", "3TB", "cold,,hot"])
def test_a_bad_corpus_names_the_option_and_the_part(text):
    with pytest.raises(InputError, match="--corpus"):
        corpus.parse(text)


def test_cold_is_refused_for_a_service_not_started_here():
    with pytest.raises(InputError, match="started here"):
        corpus.refuse_remote_cold(corpus.parse("hot,cold"), remote=True)
    with pytest.raises(InputError, match="started here"):
        corpus.refuse_remote_cold(corpus.parse("4"), remote=True)
    corpus.refuse_remote_cold(corpus.parse("hot"), remote=True)   # no error
    corpus.refuse_remote_cold(corpus.parse("cold"), remote=False)


def test_corpus_files_leave_the_temporary_ones_out(tmp_path):
    blobs = tmp_path / "blobs"
    (blobs / "ab").mkdir(parents=True)
    (blobs / ".tmp").mkdir()
    (blobs / "ab" / "abcd").write_bytes(b"x")
    (blobs / ".tmp" / ".abcd.1.tmp").write_bytes(b"y")
    (blobs / ".holds").write_bytes(b"")
    assert corpus.corpus_files(tmp_path) == [str(blobs / "ab" / "abcd")]


def _written(path, size=4 << 20):
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))
        handle.flush()
        os.fsync(handle.fileno())
    with open(path, "rb") as handle:   # in the page cache now
        handle.read()
    return str(path)


def test_the_cold_keeper_evicts_at_the_start_and_again_after_each_pass(tmp_path):
    path = _written(tmp_path / "document")
    if page_cache.residency([path]) == 0:
        pytest.fail("the file just written and read is not in the page cache: mincore does not work here")
    with ColdKeeper([path], period_s=0.2) as keeper:
        assert page_cache.residency([path]) == 0           # evicted before the step starts
        with open(path, "rb") as handle:
            handle.read()                                  # a pass reads it: cached again
        assert page_cache.residency([path]) > 0
        deadline = time.monotonic() + 5
        while page_cache.residency([path]) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert page_cache.residency([path]) == 0           # and evicted again after the pass (every 0.2 s)
    assert keeper.evictions >= 2


def test_a_seeded_corpus_warms_for_the_hot_regime(tmp_path):
    path = _written(tmp_path / "document")
    page_cache.evict([path])
    assert page_cache.residency([path]) == 0
    corpus.Seeded(Regime("hot"), 1, os.path.getsize(path), [path]).warm()
    assert page_cache.residency([path]) == 1


def test_disk_counters_of_the_device_under_a_folder(tmp_path):
    device = disk.device_of(tmp_path)
    if device is None:
        pytest.fail(f"{tmp_path} is on no block device psutil knows: the plan's disk figures would be unknown")
    first = disk.sample(device)
    path = _written(tmp_path / "document", 16 << 20)
    page_cache.evict([path])
    with open(path, "rb") as handle:
        handle.read()
    second = disk.sample(device)
    assert second.read_bytes - first.read_bytes >= 8 << 20   # the evicted file was read from the disk
    assert disk.device_of(tmp_path / "not" / "yet") == device
    assert disk.sample(None) is None


def test_disk_figures_are_rates_over_the_busiest_stretch():
    samples = [disk.DiskSample(t * 0.25, reads=int(t * 100), read_bytes=int(t * 25e6), busy_ms=int(t * 200))
               for t in range(9)]   # 400 reads/s, 100 MB/s, busy 80 %
    figures = _disk_figures(samples, span_s=2.0)
    assert figures == {"disk_read_iops": 400.0, "disk_read_mb_per_s": 100.0, "disk_busy_share": 0.8}
    assert _disk_figures(samples[:1], 2.0) == disk.UNKNOWN


def test_the_report_plots_capacity_by_corpus_and_tells_the_storage(tmp_path):
    plan = {"corpus": {"documents": 10, "bytes": 2_000_000_000, "ram_bytes": 24 * 2**30, "regime": "cold"},
            "capacity_by_corpus": [
                {"regime": "hot", "documents": 10, "bytes": 2_000_000_000, "max_sustainable_speedup": 900,
                 "national_headroom": 3.6, "retrieve_p99_ms": 40, "disk_read_iops": 3, "disk_read_mb_per_s": 0.1,
                 "disk_busy_share": 0.01, "bottleneck": "machine-cpu"},
                {"regime": "cold", "documents": 10, "bytes": 2_000_000_000, "max_sustainable_speedup": 600,
                 "national_headroom": 2.4, "retrieve_p99_ms": 90, "disk_read_iops": 900, "disk_read_mb_per_s": 95.0,
                 "disk_busy_share": 0.5, "bottleneck": "disk-reads"}],
            "storage": {"by_year": [{"year": 2025, "documents": 10**9, "bytes": 10**14,
                                     "by_sector": {"hospital": {"documents": 5 * 10**8, "bytes": 6 * 10**13}}}],
                        "window_disk_reads": {"regime": "cold", "national_retrieves_per_second": 500.0,
                                              "disk_reads_per_retrieve": 2.0, "disk_mb_per_retrieve": 0.12,
                                              "national_disk_read_iops": 1000, "national_disk_read_mb_per_s": 60.0},
                        "database": {"bytes": 8_000_000, "documents": 2000, "bytes_per_document": 4000,
                                     "national_bytes_by_year": {"2025": 4 * 10**12}}}}
    report.capacity_by_corpus(plan, tmp_path / "capacity.png")
    assert (tmp_path / "capacity.png").stat().st_size > 10_000
    words = report._corpus(plan)
    assert "cold</b> corpus of 10 documents" in words and "disk-reads" in words
    assert "1,000 reads/s and 60 MB/s" in words and "<td>2025</td>" in words and "hospital TB" in words
    assert "<td>4.00</td>" in words and "4,000 bytes per document" in words
    assert "capacity_by_corpus.png" in report._plots(plan) and "capacity_by_corpus.png" not in report._plots({})


@pytest.mark.parametrize("arguments, words", [
    (["--corpus", "warm"], "'warm' is not hot, cold or a size in GB"),
    (["--corpus", "500GB", "--max-disk-gb", "1"], "a corpus of 500 GB does not fit"),
    (["--corpus", "hot,cold", "--target", "http://127.0.0.1:9"], "needs the service started here"),
])
def test_a_plan_refuses_a_corpus_it_cannot_measure_before_writing_anything(tmp_path, arguments, words):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "plan"
    proc = subprocess.run([sys.executable, "-m", "segur.cli", "plan", str(root / "scenarios" / "smoke.yaml"),
                           "--out", str(out), *arguments], capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-800:]
    assert "Traceback" not in proc.stderr and not out.exists()


def test_the_footprint_counts_the_history_a_sized_corpus_adds():
    from planner import footprint
    from simulator.scenario import load_scenario
    from pathlib import Path
    scenario = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml")
    alone = footprint.measure(scenario, 3, 4.0)
    sized = footprint.measure(scenario, 3, 4.0, extra_corpus_bytes=5_000_000_000)
    assert sized.disk_bytes - alone.disk_bytes == pytest.approx(5e9 * footprint.STORAGE_OVERHEAD, rel=1e-6)
    assert sized.corpus_bytes == alone.corpus_bytes and "5.0 GB of the record's history" in sized.describe()


def test_a_plan_stopped_by_sigterm_stops_its_service_and_leaves_nothing(tmp_path):
    """A plan killed half-way (SIGTERM) stops the service it started and removes its half-written directory."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import psutil
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "plan"
    proc = subprocess.Popen([sys.executable, "-m", "segur.cli", "plan", str(root / "scenarios" / "smoke.yaml"),
                             "--out", str(out), "--no-compare"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    served = []
    while time.monotonic() < deadline and not served:   # wait until the plan's service runs
        time.sleep(0.5)
        served = [p for p in psutil.Process(proc.pid).children(recursive=True) if "serve" in " ".join(p.cmdline())]
    assert served, "the plan started no service within 120 s"
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-800:]
    assert "Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob(".plan*"))   # nothing half-written remains
    psutil.wait_procs(served, timeout=30)
    assert not [p for p in served if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
