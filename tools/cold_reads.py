"""Retrieves of page-cached and of cold documents, and finds beside cold retrieves, on one `segur serve`.

Seeds a corpus of documents (one professional, many patients), then runs with wrk, for each regime:
retrieves alone (uniform over the corpus), finds alone, and finds beside retrieves. The cold regime evicts
every document file from the page cache (segur.page_cache.evict: sync, then ``posix_fadvise(DONTNEED)``)
before the run and again in a loop during it, so nearly every retrieve misses the cache. Prints one JSON
object.

    uv run python tools/cold_reads.py [--documents 3000] [--workers 2] [--seconds 8] [--db postgresql://…]

Measured 2026-11-30, 20:01-20:07 UTC (SQLite, 2 workers, 6 s a phase, load average ~6 on 8 CPUs from other
work), HEAD before the cold-read change ("inline": every read on the event loop) against it, alternated:
  inline:  retrieves hot 2151 / 5231 /s; cold 2007 / 1781 /s (p99 82 / 66 ms); finds beside cold retrieves
           205 / 324 /s, p99 55 / 48 ms (alone p99 9 / 9 ms)
  pooled:  retrieves hot 3426 / 4657 /s; cold 1882 / 2467 /s (p99 74 / 53 ms); finds beside cold retrieves
           400 / 526 /s, p99 46 / 43 ms (alone p99 19 / 8 ms); 97 % of cold reads on a thread
  raw cold reads of the same files, 32 threads: 12 000-17 000 /s (the service's CPU, not this disk, is
  the limit of cold retrieves here: 0.11-0.16 of it)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from record_service.auth import Actor, issue_token, load_or_create_key
from segur import page_cache
from segur.identifiers import INS_NIR_SYSTEM, RPPS_SYSTEM, ins_key, luhn_complete

SEGUR = str(Path(sys.executable).parent / "segur")

_WRK = """
local paths = {%(paths)s}
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Authorization"] = "Bearer %(token)s"})
end
done = function(summary, latency, requests)
  io.write(string.format("WRK-RESULT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ins(rng: random.Random) -> str:
    body = (rng.choice("12") + f"{rng.randint(0, 99):02d}" + f"{rng.randint(1, 12):02d}" + f"{rng.randint(1, 95):02d}"
            + f"{rng.randint(1, 999):03d}" + f"{rng.randint(1, 999):03d}")
    return body + f"{ins_key(body):02d}"


def _bundle(ins: str, rpps: str, data: bytes) -> bytes:
    doc = {"resourceType": "DocumentReference",
           "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
           "status": "current", "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2"}]},
           "subject": {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}},
           "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
           "author": [{"identifier": {"system": RPPS_SYSTEM, "value": "8" + rpps}}],
           "content": [{"attachment": {"contentType": "application/pdf", "url": "urn:uuid:binary-1", "size": len(data),
                                       "hash": base64.b64encode(hashlib.sha1(data).digest()).decode()}}]}
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:submission-set", "request": {"method": "POST", "url": "List"},
         "resource": {"resourceType": "List", "status": "current", "mode": "working",
                      "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                                           "code": "submissionset"}]},
                      "subject": {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}},
                      "entry": [{"item": {"reference": "urn:uuid:document-1"}}]}},
        {"fullUrl": "urn:uuid:document-1", "request": {"method": "POST", "url": "DocumentReference"}, "resource": doc},
        {"fullUrl": "urn:uuid:binary-1", "request": {"method": "POST", "url": "Binary"},
         "resource": {"resourceType": "Binary", "contentType": "application/pdf",
                      "data": base64.b64encode(data).decode()}}]}).encode()


def _post(url: str, token: str, body: bytes) -> str:
    request = urllib.request.Request(url + "/", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        reply = json.loads(response.read())
    location = next(e["response"]["location"] for e in reply["entry"]
                    if "DocumentReference/" in e.get("response", {}).get("location", ""))
    return location.split("DocumentReference/")[1].split("/")[0]


def evict(root: Path, sync: bool = True) -> int:
    """Drop every file under ``root`` from the page cache (segur.page_cache.evict; after a sync unless ``sync`` is
    False, one pass); how many."""
    return page_cache.evict(root, passes=1, sync=sync)[0]


def wrk(port: int, paths: list[str], token: str, connections: int, seconds: int, work: Path) -> dict:
    script = work / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(_WRK % {"paths": ",".join(json.dumps(p) for p in paths), "token": token,
                              "seed": random.randrange(1 << 30)})
    proc = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
                           f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK-RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {proc.stderr[-500:]}")
    requests, duration_us, bad, p50, p99 = (int(x) for x in line.split()[1:])
    return {"per_s": round((requests - bad) / (duration_us / 1e6)), "non_2xx": bad,
            "p50_ms": round(p50 / 1000, 2), "p99_ms": round(p99 / 1000, 2)}


def raw_cold_reads(root: Path, threads: int, seconds: float) -> dict:
    """The disk's own ceiling: the same files, evicted, read at random by a plain pool of threads."""
    files = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if not n.startswith(".")]
    stop, counts = threading.Event(), [0] * threads

    def reader(k: int) -> None:
        rng = random.Random(k)
        while not stop.is_set():
            with open(rng.choice(files), "rb", buffering=0) as f:
                f.read()
            counts[k] += 1

    def evicting() -> None:
        while not stop.is_set():
            evict(root, sync=False)

    evict(root)
    pool = [threading.Thread(target=reader, args=(k,)) for k in range(threads)] + [threading.Thread(target=evicting)]
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return {"threads": threads, "per_s": round(sum(counts) / seconds)}


def _metric(url: str, name: str) -> dict:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {line.split('source="')[1].split('"')[0]: float(line.split()[-1])
            for line in text.splitlines() if line.startswith(name + "_total{")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--db", default=None)
    parser.add_argument("--work", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="cold-reads-"))
    data_dir, key = work / "data", work / "signing.key"
    port = _port()
    url = f"http://127.0.0.1:{port}"
    command = [SEGUR, "serve", "--data-dir", str(data_dir), "--port", str(port), "--key", str(key),
               "--workers", str(args.workers), "--max-in-flight", "100000"]
    if args.db:
        command += ["--db", args.db]
    log = open(work / "serve.log", "ab")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        rng = random.Random(7)
        rpps = luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9)))
        token = issue_token(load_or_create_key(key), Actor(rpps=rpps, sector="hospital", finess=None), 86400)
        patients = [_ins(rng) for _ in range(max(1, args.documents // 10))]
        started = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(lambda i: _post(url, token, _bundle(patients[i % len(patients)], rpps,
                                                                   os.urandom(args.size))), range(args.documents)))
        seeded_s = time.perf_counter() - started
        retrieves = [f"/Binary/{i}" for i in ids]
        finds = [f"/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{p}" for p in patients]
        blobs = data_dir / "blobs"
        figures: dict = {"documents": args.documents, "size": args.size, "workers": args.workers,
                         "db": "postgresql" if args.db else "sqlite", "seed_s": round(seeded_s, 1)}
        for regime in ("hot", "cold"):
            stop = threading.Event()

            def evicting() -> None:
                while not stop.is_set():
                    evict(blobs, sync=False)  # written once and fsynced at deposit: clean pages

            def run(what: str, paths: list[str], connections: int) -> dict:
                if regime == "hot":  # everything read once: cached
                    for p in retrieves:
                        urllib.request.urlopen(urllib.request.Request(
                            url + p, headers={"Authorization": f"Bearer {token}"}), timeout=30).read()
                else:
                    evict(blobs)
                return wrk(port, paths, token, connections, args.seconds, work)

            before = _metric(url, "segur_document_reads")
            figures[f"finds_alone_{regime}"] = run("finds", finds, 4)
            evictor = threading.Thread(target=evicting, daemon=True)  # retrieves keep missing the cache
            if regime == "cold":
                evictor.start()
            figures[f"retrieves_{regime}"] = run("retrieves", retrieves, args.connections)
            with ThreadPoolExecutor(2) as pool:
                beside = pool.submit(lambda: (time.sleep(0.5), wrk(port, finds, token, 4, args.seconds - 1, work))[1])
                figures[f"retrieves_beside_finds_{regime}"] = run("retrieves", retrieves, args.connections)
                figures[f"finds_beside_retrieves_{regime}"] = beside.result()
            after = _metric(url, "segur_document_reads")
            figures[f"reads_by_source_{regime}"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            stop.set()
            if evictor.is_alive():
                evictor.join()
        figures["raw_cold_reads"] = raw_cold_reads(blobs, 32, args.seconds)
        figures["cold_retrieves_vs_raw_disk"] = round(figures["retrieves_cold"]["per_s"]
                                                      / figures["raw_cold_reads"]["per_s"], 2)
        figures["cold_vs_hot_retrieves"] = round(figures["retrieves_cold"]["per_s"] / figures["retrieves_hot"]["per_s"], 2)
        figures["finds_p99_beside_cold_vs_alone"] = round(
            figures["finds_beside_retrieves_cold"]["p99_ms"] / figures["finds_alone_cold"]["p99_ms"], 2)
        print(json.dumps(figures))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


if __name__ == "__main__":
    main()
