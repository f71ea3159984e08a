"""How fast can one load-driver process replay a schedule on time? Prints figures; the last line is JSON.

A trivial endpoint (Granian, one worker, answering every path with 200 and an empty searchset Bundle,
which the driver's answer check accepts for a search) takes the traffic, so what
is measured is the driver: one Locust process (`load/locustfile.py`, exactly as `segur load` runs
it) replays synthetic schedules of searches at increasing constant rates. The driver's ceiling
is the highest rate at which it still sends every request, has them answered at that rate, and
keeps the lateness p99 within 20 ms. A capacity plan must stay below it, or it measures the driver.

Run: uv run python bench/replay.py [--seconds 15] [--rates 2000,4000,…] [--patients 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load.command import LOCUSTFILE  # noqa: E402
from planner.service import free_port  # noqa: E402
from segur.identifiers import ins_for_patients  # noqa: E402

TRIVIAL_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"resourceType":"Bundle","type":"searchset","entry":[]}'})
'''
ON_TIME_MS = 20.0


def synthetic_schedule(path: Path, rate: float, seconds: float, patients_count: int = 1000) -> int:
    """Searches by ``patients_count`` patients at a constant rate, in the simulator's schedule format."""
    rows = int(rate * seconds)
    patients = ins_for_patients(np.arange(rows) % patients_count, 65_000_000)
    table = pa.table({
        "offset_s": np.arange(rows) / rate, "operation": ["search"] * rows, "sector": ["patient"] * rows,
        "actor_kind": ["patient"] * rows, "actor_id": patients, "facility_id": pa.nulls(rows, pa.string()),
        "patient_ins": patients, "document_id": pa.nulls(rows, pa.string()), "type_code": pa.nulls(rows, pa.string()),
        "size_bytes": np.zeros(rows, dtype=np.int64), "target_rpps": pa.nulls(rows, pa.string()),
    }, metadata={"window_minutes": str(seconds / 60)})
    pq.write_table(table, path)
    return rows


def replay(work: Path, target: str, rate: float, seconds: float, patients: int) -> dict:
    schedule = work / f"schedule-{rate:g}.parquet"
    synthetic_schedule(schedule, rate, seconds, patients)
    report = work / f"replay-{rate:g}.json"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", target,
               "--schedule", str(schedule), "--key", str(work / "key"), "--replay-report", str(report),
               "--drain-seconds", "5", "--loglevel", "ERROR", "--only-summary"]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    elapsed = time.perf_counter() - started
    if not report.exists():
        raise RuntimeError(f"locust exited {proc.returncode}: {proc.stderr[-500:]}")
    figures = json.loads(report.read_text())
    figures["achieved_rps"] = figures["succeeded"] / max(figures["wall_s"], figures["last_answer_s"])
    figures["elapsed_s"] = elapsed
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="length of each constant-rate replay (long enough that one stray stall is not 1 %%)")
    parser.add_argument("--patients", type=int, default=1000, help="distinct patients (each needs its own token)")
    parser.add_argument("--rates", default="1000,2000,3000,4000,5000,6000,7000,8000,9000,10000,12000,14000",
                        help="requests per second to try, in order (stops at the first that fails)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as folder:
        work = Path(folder)
        (work / "trivial.py").write_text(TRIVIAL_APP)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", "1", "trivial:app"], cwd=work,
                                  env={**os.environ, "PYTHONPATH": str(work)}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        target = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(target + "/", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            best = None
            for rate in (float(r) for r in args.rates.split(",")):
                figures = replay(work, target, rate, args.seconds, args.patients)
                on_time = (figures["sent"] == figures["planned"] and figures["failed"] == 0
                           and figures["achieved_rps"] >= 0.95 * rate and figures["lateness_p99_ms"] <= ON_TIME_MS)
                print(f"{rate:>7,.0f}/s planned: sent {figures['sent']:,}/{figures['planned']:,}, achieved "
                      f"{figures['achieved_rps']:,.0f}/s, lateness p50 {figures['lateness_p50_ms']} ms p99 "
                      f"{figures['lateness_p99_ms']} ms -> {'on time' if on_time else 'falls behind'}", flush=True)
                if not on_time:
                    break
                best = (rate, figures)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    rate, figures = best if best else (0.0, {"lateness_p99_ms": None, "lateness_p50_ms": None})
    print(json.dumps({"driver_max_rps_per_process": rate, "lateness_p99_ms": figures["lateness_p99_ms"],
                      "lateness_p50_ms": figures["lateness_p50_ms"], "on_time_ms": ON_TIME_MS,
                      "seconds_per_rate": args.seconds}))


if __name__ == "__main__":
    main()
