"""Benchmark of the record service over HTTP on 127.0.0.1, on SQLite and PostgreSQL, with this machine's ceilings.

For each back end, in one run and bounded in time:
- deposits/s of 100 KB documents (ITI-65), finds/s (ITI-67) and retrieves/s (ITI-68, 100 KB back), with
  p50/p99 latency; every professional read also writes its access-history row, as in production;
- the ceilings: the same server stack answering a bare "hello" (no storage, no token), and raw storage:
  the same rows and bytes written straight into the same database and file store (fsynced files, batched
  transactions, no HTTP, no JSON, no checks). The bare server is measured before, between and after the
  back ends, and the median taken: on this shared VM one 4-second phase differs from the next by ±15 %.
  It also answers a constant 100 KB body, the ceiling for a retrieve of that size.
- the IHE XDS.b calls beside their FHIR counterparts, built by the driver's own load/xds.py (the bytes a
  professional's software sends): ITI-41 deposits (100 KB, MTOM) beside ITI-65, ITI-18 FindDocuments beside
  ITI-67 finds, ITI-43 (one 100 KB document) beside ITI-68 retrieves, and the DMP's TD0.2 (POST /xds/td02)
  beside the FHIR TD0.2 (GET /Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|INS), each timed for the same
  --seconds, with the same connections and client: the planner has to know what a call costs on the front
  the DMP's clients actually use. Why each XDS.b figure can be trusted:
  * the VIHF assertions are signed ahead (identity.vihf.issue_assertion, by the structure beside the service's
    --key, which is what the service trusts), one per professional and patient, and reused; each is sent once
    more per worker before the phases, so the service's one verification per assertion is done too. Signing
    and that first verification are not what is measured: a professional's software signs once and reuses its
    assertion through a consultation;
  * every answer is checked, and only those that pass count in the rate: a 200, status Success (the
    rs:RegistryResponse's for ITI-43), for ITI-43 the document's exact bytes (the MIME part), for TD0.2 DmpStatus
    OK and Autorisation VALIDE (with wrk, in its Lua script; with the asyncio client, by load/xds.py's
    read_answer). Before they are timed, the finds of 200 patients are checked to answer the same documents
    over XDS.b as over FHIR, and every ITI-43 request its document;
  * ITI-41 request n is the per-patient request load/xds.py made with document n's bytes, uniqueId, SHA-1 and
    times put in (``Iti41Template``), as cheap to make as an ITI-65 one; ITI-43 reads the ITI-41 documents of the
    200 patients whose documents ITI-68 reads;
  * both finds answer the same documents (all of the patient's, ITI-65's and ITI-41's: a few each): ITI-65
    deposits carry their service start time (context.period.start, ITI-41's serviceStartTime), on which
    FindDocuments selects (from 2025-12-31; every document here is of 2026). Each XDS.b phase runs right after
    its FHIR one, on the same database (a find or retrieve after both deposit phases).
  ``xds_vs_fhir`` (per back end, per pair: deposit, find, retrieve, td02) gives both rates, both server CPU µs per
  call and XDS.b over FHIR.
- the CPU per call each way: the server's process group, the client, the PostgreSQL cluster and the machine
  over the answers that passed, and what the service itself attributes to the call (``attributed``: the
  difference of its /metrics, segur_request_cpu_seconds_total over segur_calls_total, read before and after
  the phase with load/service_metrics.py; a fair-share attribution, see record_service/cpu_share.py).
The last line is one JSON object: per back end, reads_vs_bare (the slower of finds and retrieves over the
bare "hello" rate; also each of them apart, and retrieves over the bare 100 KB rate) and
deposits_vs_raw_storage, with every figure behind them, and the CPU each request cost the server, the
client, the PostgreSQL cluster and the whole machine in each phase (``cpu_us_per_request``; the bare
server's in ``bare_cpu_us_per_request``; the service's own attribution in ``attributed_cpu_us_per_call``):
where the gap to the bare rate goes; and ``xds_vs_fhir``. ``read_budget_us`` turns
that into a budget per read: of the machine CPU that half the bare rate allows a read, what an answer of
its size and the database cost whatever the service does, what that leaves the service, and what it used.

The load client: the bare endpoint, finds and retrieves are all driven by the same client with the same
connections, against the same server (Granian, same worker count) on 127.0.0.1: `wrk` (a native load
generator, Debian package `wrk`) when it is on PATH, else this file's asyncio client. On this 2-core
machine the client shares the CPU with the server, so a client that costs as much as the server's own
work (the asyncio client does, at the bare endpoint's rate) caps the bare rate and flatters the ratio;
each phase therefore reports the client's and the server's CPU seconds. Deposits (each body unique,
100 KB; ITI-65 and ITI-41 alike) always use the asyncio client, whose cost is small beside a deposit's. The
XDS.b reads are POSTs of ready-made requests from the same client (wrk with a Lua script, or the asyncio one).

Why 64 connections: the client is a closed loop, so its rate is connections / latency until the server's
CPU is the limit. A professional's read waits for its access-history row to be fsynced (about a
millisecond here), so 32 connections left a fifth of the CPU idle during finds and measured that wait,
not the service's capacity (finds 13.7 k/s at 32, 16.6 k/s at 64, 16.2 k/s at 128); the bare server's
rate is the same at 32, 64 and 128 within the machine's noise.

    uv run python bench/service.py [--seconds 4] [--connections 64] [--workers 2] [--client wrk|python]

``--corpus-gb N`` measures, instead of the phases above, the service against a record of N GB on disk (issue 15),
hot and cold, on each back end in turn (``--backends``), in one bounded run (about 3 minutes for 2 GB):
- the corpus: N GB on disk as the service stores it, files and registry (the files 95 % of it), documents of
  100–120 KB (each unique) over patients of about ten each, written through the
  service's own storage layout (BlobStore.put: content-addressed, fsynced, renamed into place, in 16 threads)
  and registered as the raw-storage phase writes rows (the deposit's INSERT, its submission set and search
  values, batched transactions); PostgreSQL is then vacuumed, analysed and checkpointed. The same files serve
  both back ends (moved by a rename into the second one's data directory, never written twice); each gets
  its own registry of them. Before the phases, 20 retrieves are checked to answer the corpus's exact bytes
  and 5 patients' finds their documents;
- hot: every file read once (a mincore sample of 500 files checks they are resident; if the corpus does not
  fit in the page cache the run says so), then finds (ITI-67, by patient), retrieves (ITI-68, the whole
  corpus in a random order: uniform, each file once) and deposits (ITI-65, 100 KB);
- cold: every corpus file evicted before each cold phase (sync, then posix_fadvise DONTNEED on each file,
  twice), and a mincore sample of 500 files checks that none has a page left (``cold_residency*``). First
  the disk's own ceiling (``raw_disk``): the evicted files read whole at random, each once, by a plain pool
  of as many threads as the bench has connections; then the server stack's own ceiling for an answer of that
  size with no storage at all (``bare``: the same Granian server and workers answering a constant 100 KiB body
  to the same client, ``bare_document_vs_raw_disk``); the raw reads again at the service's own read
  concurrency (``raw_disk_service_threads``: workers x Settings.blob_read_threads threads); then cold
  retrieves, cold finds, and the two cases of finds beside retrieves below; then deposits with the corpus
  present. A cold phase must not read a file twice (the second read would be hot): it lasts --seconds, or
  fewer whole seconds when retrieves at the faster of the raw and the hot retrieve rates would read 80 % of
  the corpus sooner;
  ``cold_retrieves_read_a_file_twice`` says whether it happened anyway;
- finds beside retrieves, what ``finds_p99_beside_cold_vs_alone`` means: whether a retrieve that waits for the
  disk stalls the other requests of its worker (a read on the event loop), measured in an open model, well
  under the machine's capacity, so that the 2 cores are not what the ratio measures. Finds at a fixed rate
  (OPEN_FIND_SHARE = 0.05 of this run's closed-loop cold finds rate), each request sent on time whatever the
  answers' latency (the latency counted from its scheduled time), for up to 2 x --seconds: alone, beside cold
  retrieves at a fixed rate (OPEN_RETRIEVE_SHARE = 0.25 of this run's closed-loop cold retrieves rate; the
  corpus evicted just before, each file read once), beside hot retrieves at the same rate (the control: files
  read just before), and alone again. ``finds_p99_beside_cold_vs_alone`` = p99 of finds beside cold retrieves
  over the lower of the two p99s alone; ``finds_p99_beside_hot_vs_alone`` the control's. Each phase reports
  ``machine_busy`` (the whole machine's CPU over its 2 cores, other work included) and the client's own
  lateness (``send_late_p99_ms``). The shares were first 0.1 and 0.5: then the machine was 0.90-0.97 busy
  in both the cold and the hot phase (the open-model clients, in Python, cost more per request than wrk), so
  the ratio again measured saturation; at 0.05 and 0.25 it is about half busy. The earlier figure, both
  loads as saturating closed loops (finds over --connections/8 connections, retrieves over --connections),
  is kept as ``finds_p99_beside_cold_vs_alone_saturating`` (and ``..._hot_..._saturating``): on 2 cores it
  is mostly CPU shared;
- the disk is shared: the run never means to hold more than N GB + 10 % on it (the corpus, its database,
  the deposits: each deposit phase is as long as the room left allows, 5 % of the corpus at most, and its
  files are removed after it; PostgreSQL's WAL is kept to 32–128 MB and checkpointed before a deposit phase;
  the empty cluster initdb makes is not counted: ``disk_bytes_before``; ``disk_budget_kept`` says whether
  the peak stayed within), and the whole working directory is removed at the end, on failure too.
Only the corpus files are evicted: the database and the file system's metadata (inodes, directories) stay
cached, as they would not in a cold national store; and on a VM the "disk" may be a host's cache.
The last line is one JSON object: at the top level (the least favourable back end)
``cold_retrieves_vs_raw_disk`` (cold retrieves/s over raw cold reads/s) and ``finds_p99_beside_cold_vs_alone``;
per back end those two, ``hot_retrieves_vs_raw_disk`` (the most the service's CPU allows here), the open-model
and the saturating finds-beside figures, ``bare_document_vs_raw_disk`` (the most the server stack allows), hot and cold
rates, p50, p99 and CPU µs per call of finds, retrieves and deposits, ``cold_vs_hot``, the raw disk's files/s
and MB/s, the finds alone / beside figures, the residency samples, the corpus's write and registration rates.

    uv run python bench/service.py --corpus-gb 2 [--seconds 4] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from identity.structure import load_or_create_structure  # noqa: E402
from identity.vihf import issue_assertion  # noqa: E402
from load import xds  # noqa: E402
from record_service.auth import Actor, issue_token, load_or_create_key  # noqa: E402
from record_service.blobs import BlobStore  # noqa: E402
from record_service.ceiling import DOCUMENT_BYTES  # noqa: E402
from record_service.settings import Settings  # noqa: E402
from segur import page_cache  # noqa: E402
from segur.identifiers import INS_NIR_SYSTEM, RPPS_SYSTEM, ins_key, luhn_complete  # noqa: E402

SEGUR = str(Path(sys.executable).parent / "segur")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the load client: raw HTTP/1.1 keep-alive over asyncio, in its own process --------------------

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _drive(port: int, requests: list[bytes], connections: int, seconds: float, unique, check=None,
                 limit: int | None = None) -> dict:
    """``check(index, status, body)``, when given, decides which answers count (``index``: the request's
    position in ``requests``, or the counter ``unique`` made it from); else every 2xx counts. ``limit``: with
    ``unique``, at most that many requests (the phase ends sooner when they are all answered)."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(10**12))
    passed: list[int] = []
    failed = 0

    async def one_connection(offset: int) -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        i = offset
        while time.perf_counter() < deadline:
            if unique:
                index = next(counter)
                if limit is not None and index >= limit:
                    break
                request = unique(requests, index)
            else:
                index = i % len(requests)
                request = requests[index]
            i += connections
            started = time.perf_counter()
            writer.write(request)
            status, body = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if check is not None:
                if check(index, status, body):
                    passed.append(index)
                else:
                    failed += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(k) for k in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    ok = len(passed) if check is not None else sum(n for s, n in statuses.items() if 200 <= s < 300)

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else 0.0

    result = {"per_s": round(ok / elapsed, 1), "requests": len(latencies), "statuses": statuses,
              "p50_ms": pct(0.50), "p99_ms": pct(0.99)}
    if check is not None:
        result.update(passed=ok, failed_checks=failed)
        if unique:
            result["passed_ids"] = passed
    return result


def _client_process(port, requests, connections, seconds, unique, check, out, limit=None) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_drive(port, requests, connections, seconds, unique, check, limit)))


def drive(port: int, requests: list[bytes], connections: int, seconds: float, unique=None, check=None,
          limit: int | None = None) -> dict:
    """Run the load from a separate process (so the bench's own bookkeeping does not slow it)."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    process = context.Process(target=_client_process,
                              args=(port, requests, connections, seconds, unique, check, out, limit))
    process.start()
    result = out.get(timeout=seconds + 120)
    process.join(30)
    return result


# --- the open-model client: requests at a fixed rate, whatever the answers' latency -----------------

async def _drive_open(port: int, requests: list[bytes], rate: float, seconds: float, max_connections: int) -> dict:
    """Request k sent at start + k / rate (evenly spaced, not in a closed loop: a slow answer does not slow the
    next request), each on an idle keep-alive connection (a new one opened when none is idle, up to
    ``max_connections``, then it waits for one). The latency is counted from the request's scheduled time, so
    a wait for a connection or for this client's loop is in it (no coordinated omission); ``send_late_p99_ms``
    says how late the client itself was in sending."""
    loop = asyncio.get_running_loop()
    count = max(1, int(rate * seconds))
    idle: list = []
    opened = 0
    free = asyncio.Condition()
    latencies: list[float] = []
    late: list[float] = []
    statuses: dict[int, int] = {}
    for _ in range(min(16, max_connections)):  # a few ready before the clock starts
        idle.append(await asyncio.open_connection("127.0.0.1", port, limit=1 << 22))
        opened += 1

    async def one(scheduled: float, request: bytes) -> None:
        nonlocal opened
        late.append(loop.time() - scheduled)
        async with free:
            while not idle and opened >= max_connections:
                await free.wait()
            connection = idle.pop() if idle else None
            if connection is None:
                opened += 1
        if connection is None:
            connection = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        reader, writer = connection
        writer.write(request)
        status, _ = await _read_response(reader)
        latencies.append(loop.time() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        async with free:
            idle.append(connection)
            free.notify()

    start = loop.time() + 0.05
    tasks = []
    for k in range(count):
        scheduled = start + k / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled, requests[k % len(requests)])))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    for _, writer in idle:
        writer.close()
    latencies.sort()
    late.sort()

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2) if values else 0.0

    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {"offered_per_s": round(rate, 1), "per_s": round(ok / elapsed, 1), "requests": len(latencies),
            "statuses": statuses, "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99),
            "max_ms": pct(latencies, 1.0), "send_late_p99_ms": pct(late, 0.99), "connections_opened": opened}


def _open_client_process(port, requests, rate, seconds, max_connections, out) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_drive_open(port, requests, rate, seconds, max_connections)))


def drive_open(port: int, loads: list[tuple[list[bytes], float]], seconds: float, max_connections: int = 256
               ) -> list[dict]:
    """Several open-model loads at once (``(requests, rate)`` each), each from a process of its own started
    together (so one's answers never delay the other's sending), for ``seconds``."""
    context = multiprocessing.get_context("fork")
    runs = []
    for requests, rate in loads:
        out = context.Queue()
        process = context.Process(target=_open_client_process,
                                  args=(port, requests, rate, seconds, max_connections, out))
        runs.append((process, out))
    for process, _ in runs:
        process.start()
    results = [out.get(timeout=seconds + 120) for _, out in runs]
    for process, _ in runs:
        process.join(30)
    return results


# --- the native client: wrk, when installed ------------------------------------------------------

_WRK_SCRIPT = """
local paths = {%(paths)s}
local headers = {%(headers)s}
local i = %(offset)d
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("WRK-RESULT %%d %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def drive_wrk(port: int, paths: list[str], token: str | None, connections: int, seconds: float, work: Path) -> dict:
    """GETs of ``paths`` in turn over ``connections`` keep-alive connections from one wrk thread."""
    headers = f'["Authorization"] = "Bearer {token}"' if token else ""
    script = work / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(_WRK_SCRIPT % {"paths": ",".join(json.dumps(p) for p in paths), "headers": headers,
                                     "offset": 0})
    proc = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                           "-s", str(script), f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK-RESULT")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    requests, duration_us, non_2xx, socket_errors, timeouts, p50, p99, _ = (int(x) for x in line.split()[1:])
    ok = requests - non_2xx
    return {"per_s": round(ok / (duration_us / 1e6), 1), "requests": requests,
            "statuses": {"2xx/3xx": ok, "other": non_2xx},
            "socket_errors": socket_errors + timeouts, "p50_ms": round(p50 / 1000, 2), "p99_ms": round(p99 / 1000, 2)}


# The XDS.b reads (ITI-18, ITI-43, TD0.2) through wrk: POSTs of ready-made raw requests, read from a file,
# each answer checked in the script (a 200 and, by kind: the Success status; for ITI-43 also the document's
# exact bytes as its MIME part, "\r\n\r\n" + bytes + "\r\n--", the bytes being the run's shared body + the
# 12 digits of the uniqueId's last arc; for TD0.2 DmpStatus OK and Autorisation VALIDE). An answer that fails
# is counted apart and not in the rate.
_WRK_POST_SCRIPT = """
local requests = {}
local f = assert(io.open(%(requests)s, "rb"))
while true do
  local line = f:read("*l")
  if not line then break end
  requests[#requests + 1] = f:read(tonumber(line))
end
f:close()
local kind = %(kind)s
local shared = nil
if kind == "retrieve" then
  local g = assert(io.open(%(shared)s, "rb"))
  shared = g:read("*a")
  g:close()
end
local SUCCESS = "ResponseStatusType:Success\\""
local i = %(offset)d
failed = 0
request = function()
  i = i %% #requests + 1
  return requests[i]
end
local function passes(body)
  if kind == "td02" then
    return body:find("DmpStatus>OK<", 1, true) and body:find("Autorisation>VALIDE<", 1, true)
  end
  if not body:find(SUCCESS, 1, true) then return false end
  if kind ~= "retrieve" then return true end
  local n = body:match("DocumentUniqueId>[%%d%%.]-(%%d+)<")
  local at = body:find(shared, 1, true)
  if not n or not at or body:sub(at - 4, at - 1) ~= "\\r\\n\\r\\n" then return false end
  local after = at + #shared
  return body:sub(after, after + 15) == string.format("%%012d", tonumber(n)) .. "\\r\\n--"
end
response = function(status, headers, body)
  if status ~= 200 or not passes(body) then failed = failed + 1 end
end
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
done = function(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("failed") end
  io.write(string.format("WRK-RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max, bad))
end
"""


def drive_wrk_post(port: int, requests: list[bytes], kind: str, connections: int, seconds: float, work: Path,
                   shared: bytes = b"") -> dict:
    """The raw HTTP ``requests`` in turn over ``connections`` keep-alive connections from one wrk thread,
    each answer checked as ``kind`` ("find", "retrieve", "td02") says (see ``_WRK_POST_SCRIPT``)."""
    name = uuid.uuid4().hex[:8]
    listing, shared_file, script = work / f"wrk-{name}.requests", work / f"wrk-{name}.shared", work / f"wrk-{name}.lua"
    with listing.open("wb") as f:
        for request in requests:
            f.write(b"%d\n" % len(request) + request)
    shared_file.write_bytes(shared)
    script.write_text(_WRK_POST_SCRIPT % {"requests": json.dumps(str(listing)), "kind": json.dumps(kind),
                                          "shared": json.dumps(str(shared_file)), "offset": 0})
    try:
        proc = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                               "-s", str(script), f"http://127.0.0.1:{port}/"],
                              capture_output=True, text=True, timeout=seconds + 60)
    finally:
        for path in (listing, shared_file, script):
            path.unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK-RESULT")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    total, duration_us, non_2xx, socket_errors, timeouts, p50, p99, _, failed = (int(x) for x in line.split()[1:])
    passed = total - failed
    return {"per_s": round(passed / (duration_us / 1e6), 1), "requests": total,
            "statuses": {"2xx/3xx": total - non_2xx, "other": non_2xx}, "passed": passed, "failed_checks": failed,
            "socket_errors": socket_errors + timeouts, "p50_ms": round(p50 / 1000, 2), "p99_ms": round(p99 / 1000, 2)}


class Load:
    """The client of this run's GETs (the same for the bare endpoint and the service) and of the XDS.b reads,
    with CPU accounting around every measured phase."""

    def __init__(self, client: str, connections: int, seconds: float, work: Path):
        self.client, self.connections, self.seconds, self.work = client, connections, seconds, work
        self.database: "Postgres | None" = None  # a database server of its own, whose CPU is counted apart

    def get(self, server: "Server", paths: list[str], token: str | None, call: str | None = None) -> dict:
        if self.client == "wrk":
            return self.measure(server, lambda: drive_wrk(server.port, paths, token, self.connections, self.seconds,
                                                          self.work), call)
        requests = [http_request("GET", p, token) for p in paths]
        return self.measure(server, lambda: drive(server.port, requests, self.connections, self.seconds), call)

    def post(self, server: "Server", requests: list[bytes], kind: str, check, call: str, shared: bytes = b"") -> dict:
        """The XDS.b reads: wrk checking each answer in Lua, or the asyncio client checking it with ``check``."""
        if self.client == "wrk":
            return self.measure(server, lambda: drive_wrk_post(server.port, requests, kind, self.connections,
                                                               self.seconds, self.work, shared), call)
        return self.measure(server, lambda: drive(server.port, requests, self.connections, self.seconds,
                                                  check=check), call)

    def measure(self, server: "Server", run, call: str | None = None, client: str | None = None) -> dict:
        """``run()``'s figures, with the CPU seconds the server, the client, the database and the machine spent
        meanwhile, and (``call``: the service's name of the call measured) the CPU the service itself
        attributed to that call in its ``/metrics``, read before and after."""
        metrics_before = server.metrics() if call else None
        before_server, before_client = server.cpu_seconds(), _children_cpu_seconds()
        before_machine = _machine_cpu_seconds()
        before_database = self.database.cpu_seconds() if self.database else None
        result = run()
        result["client"] = client or self.client
        result["server_cpu_s"] = round(server.cpu_seconds() - before_server, 2)
        result["client_cpu_s"] = round(_children_cpu_seconds() - before_client, 2)
        result["machine_cpu_s"] = round(_machine_cpu_seconds() - before_machine, 2)
        if before_database is not None:
            result["database_cpu_s"] = round(self.database.cpu_seconds() - before_database, 2)
        if call:
            from load.service_metrics import cpu_per_call_us

            attributed = cpu_per_call_us(metrics_before, server.metrics()).get(call)
            result["call"] = call
            if attributed:
                result["attributed"] = {"calls": attributed["calls"],
                                        "cpu_us_per_call": round(attributed["cpu_us_per_call"], 1),
                                        "share": round(attributed["share"], 3)}
        return result


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (every process, the kernel's interrupt work included)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _process_cpu_seconds(matches) -> float:
    """CPU time (user + system) so far of the processes whose /proc stat fields ``matches`` accepts."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if matches(int(entry), fields):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# --- requests -------------------------------------------------------------------------------------

def make_ins(rng: random.Random) -> str:
    body = (rng.choice("12") + f"{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 95):02d}"
            f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}")
    return body + f"{ins_key(body):02d}"


def http_request(method: str, path: str, token: str | None, body: bytes = b"", accept: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if accept:
        lines.append(f"Accept: {accept}")
    if body:
        lines += ["Content-Type: application/fhir+json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class DepositTemplate:
    """ITI-65 requests for 100 KB documents, each unique (its first 12 bytes are a counter) and cheap to make."""

    def __init__(self, token: str, patients: list[str], author_rpps: str, run_id: str):
        rest = os.urandom(DOCUMENT_BYTES - 12)
        self.token = token
        self.patients = patients
        self.run_id = run_id
        self.rest_b64 = base64.b64encode(rest)
        self.author = author_rpps

    def body(self, n: int) -> bytes:
        ins = self.patients[n % len(self.patients)]
        unique = base64.b64encode(n.to_bytes(12, "big"))
        subject = {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}}
        doc = {"resourceType": "DocumentReference",
               "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{self.run_id}-{n}"},
               "status": "current", "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2"}]},
               "subject": subject, "date": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00+01:00",
               # the service start time, as an ITI-41's serviceStartTime: what the ITI-18 finds select on
               "context": {"period": {"start": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00+01:00"}},
               "author": [{"identifier": {"system": RPPS_SYSTEM, "value": "8" + self.author}}],
               "content": [{"attachment": {"contentType": "application/pdf", "url": "urn:uuid:bin",
                                           "size": DOCUMENT_BYTES}}]}
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:ss", "request": {"method": "POST", "url": "List"}, "resource": {
                "resourceType": "List", "status": "current", "mode": "working", "subject": subject,
                "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                                     "code": "submissionset"}]}}},
            {"fullUrl": "urn:uuid:doc", "request": {"method": "POST", "url": "DocumentReference"}, "resource": doc},
            {"fullUrl": "urn:uuid:bin", "request": {"method": "POST", "url": "Binary"},
             "resource": {"resourceType": "Binary", "contentType": "application/pdf", "data": "@DATA@"}}]}
        head, tail = json.dumps(bundle, separators=(",", ":")).encode().split(b"@DATA@")
        return head + unique + self.rest_b64 + tail

    def unique_data(self, n: int) -> bytes:
        return n.to_bytes(12, "big") + base64.b64decode(self.rest_b64)


_TEMPLATE: DepositTemplate | None = None


def _unique_deposit(_requests, n: int) -> bytes:
    return http_request("POST", "/", _TEMPLATE.token, _TEMPLATE.body(n))


# --- the XDS.b calls (load/xds.py, the driver's own) -------------------------------------------------

# FindDocuments' $XDSDocumentEntryServiceStartTimeFrom: the DMP's first opening looks two years back; every
# document of this bench (ITI-65 and ITI-41 alike) started in 2026, so this From keeps them all, as the
# ITI-67 find (status=current) does: both finds answer the same documents (checked before they are timed)
XDS_FIND_FROM = dt.datetime(2025, 12, 31, tzinfo=dt.timezone.utc)


def soap_request(request: xds.Request) -> bytes:
    """A load/xds.py request as raw HTTP/1.1 (keep-alive) to the service on 127.0.0.1."""
    return (f"POST {request.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {request.content_type}\r\n"
            f"Content-Length: {len(request.body)}\r\n\r\n").encode() + request.body


class Iti41Template:
    """ITI-41 requests for 100 KB documents (MTOM), each unique and cheap to make, as the ITI-65 ones are.

    load/xds.py's provide_and_register makes one request per patient (with the depositor's VIHF for that
    patient) around a placeholder document; request n is that patient's with the document's bytes, uniqueId,
    SHA-1 and times put in: document n is the run's shared 100 KB - 12 bytes followed by the 12 digits of n (last,
    so that its SHA-1 is a copy of the shared part's hash state and 12 more bytes), its uniqueId ROOT.n (its
    submission set's ROOT.n.1), its times the same day of 2026 as ITI-65 deposit n's."""

    _N = "999999999999999"          # the uniqueId's last arc in the per-patient requests
    _WHEN = dt.datetime(2026, 1, 1, 9, tzinfo=dt.timezone.utc)

    def __init__(self, vihf: dict[str, bytes], patients: list[str], author: str, finess: str, run_id: str):
        self.patients = patients
        self.shared = os.urandom(DOCUMENT_BYTES - 12)
        self.root = f"1.2.250.1.999.2.{int(run_id, 16)}"
        self._hash = hashlib.sha1(self.shared)
        placeholder = self.shared + b"#" * 12
        self._marks = (f"{self.root}.{self._N}".encode(), hashlib.sha1(placeholder).hexdigest().encode(),
                       xds.dtm(self._WHEN).encode())
        self.templates: dict[str, tuple[bytes, bytes, bytes]] = {}
        for ins in patients:
            request = xds.provide_and_register(vihf[ins], ins=ins, rpps=author, finess=finess,
                                               master_id=f"urn:oid:{self.root}.{self._N}", data=placeholder,
                                               type_code="11502-2", when=self._WHEN)
            head, tail = request.body.split(placeholder)
            if not all(mark in head for mark in self._marks):
                raise SystemExit("load/xds.py's ITI-41 no longer carries the uniqueId, hash or time it was given")
            self.templates[ins] = (head, tail, request.content_type.encode())

    def unique_id(self, n: int) -> str:
        return f"{self.root}.{n}"

    def data(self, n: int) -> bytes:
        return self.shared + b"%012d" % n

    def request(self, n: int) -> bytes:
        head, tail, content_type = self.templates[self.patients[n % len(self.patients)]]
        digest = self._hash.copy()
        suffix = b"%012d" % n
        digest.update(suffix)
        uid, sha1, when = self._marks
        head = (head.replace(uid, self.unique_id(n).encode()).replace(sha1, digest.hexdigest().encode())
                .replace(when, b"2026%02d%02d090000" % (1 + n % 12, 1 + n % 28)))
        length = len(head) + len(self.shared) + len(suffix) + len(tail)
        return (b"POST /xds/iti41 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type +
                b"\r\nContent-Length: %d\r\n\r\n" % length + head + self.shared + suffix + tail)


_ITI41: Iti41Template | None = None


def _unique_iti41(_requests, n: int) -> bytes:
    return _ITI41.request(n)


def _answer(status: int, body: bytes) -> xds.Answer | None:
    """The SOAP answer of a 200, else None (a fault, an unreadable answer)."""
    if status != 200:
        return None
    try:
        return xds.read_answer(body)
    except xds.BadAnswer:
        return None


def _deposited(_n: int, status: int, body: bytes) -> bool:
    answer = _answer(status, body)
    return answer is not None and answer.status == xds.SUCCESS


def _found(_index: int, status: int, body: bytes) -> bool:
    answer = _answer(status, body)
    return answer is not None and answer.status == xds.SUCCESS


def _td02_open(_index: int, status: int, body: bytes) -> bool:
    answer = _answer(status, body)
    return answer is not None and answer.td02() == ("OK", "VALIDE")


def _retrieve_status(answer: xds.Answer) -> str:
    """An ITI-43 answer's status. It is on the rs:RegistryResponse inside xdsb:RetrieveDocumentSetResponse (ITI
    TF-2 3.43.4.2), where load/xds.py's ``Answer.status`` (the body element's own attribute) does not look: it
    gives "" for every ITI-43 answer, so the bench reads the inner element itself."""
    inner = answer.body.find(xds.q("rs", "RegistryResponse"))
    return answer.status or (inner.get("status", "") if inner is not None else "")


def _retrieved(asked: list[int]):
    """The check of ITI-43 answers: Success, and the one document asked, with its exact bytes."""
    def check(index: int, status: int, body: bytes) -> bool:
        answer = _answer(status, body)
        n = asked[index]
        return (answer is not None and _retrieve_status(answer) == xds.SUCCESS
                and answer.documents() == {_ITI41.unique_id(n): _ITI41.data(n)})
    return check


def exchange(port: int, requests: list[bytes], connections: int = 16) -> list[tuple[int, bytes]]:
    """Each request once, over ``connections`` new keep-alive connections (untimed): (status, body) in order."""
    async def run() -> list:
        pending = list(enumerate(requests))
        answers: list = [None] * len(requests)

        async def connection() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
            while pending:
                index, request = pending.pop()
                writer.write(request)
                answers[index] = await _read_response(reader)
            writer.close()

        await asyncio.gather(*(connection() for _ in range(connections)))
        return answers
    return asyncio.run(run())


def checked(port: int, requests: list[bytes], check, what: str) -> None:
    """Send every request once (untimed) and stop the bench when an answer fails ``check``: a phase whose
    requests are refused must not be measured as a fast one."""
    for index, (status, body) in enumerate(exchange(port, requests)):
        if not check(index, status, body):
            raise SystemExit(f"{what}: request {index} answered {status}: {body[:600]!r}")


# --- servers --------------------------------------------------------------------------------------

class Server:
    def __init__(self, args: list[str], port: int, health: str, log: Path):
        self.port = port
        self.proc = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{args[:3]} exited: {log.read_text()[-800:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {log.read_text()[-800:]}")

    def metrics(self) -> str:
        """The service's ``/metrics`` (Prometheus text): its CPU attributed per call, among others."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as response:
            return response.read().decode()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server's process group so far: its supervisor and workers."""
        return _process_cpu_seconds(lambda pid, fields: int(fields[2]) == self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


def start_service(work: Path, db_url: str | None, workers: int) -> Server:
    port = free_port()
    args = [SEGUR, "serve", "--data-dir", str(work / "data"), "--port", str(port), "--key", str(work / "key"),
            "--workers", str(workers)]
    if db_url:
        args += ["--db", db_url]
    return Server(args, port, "/health", work / "serve.log")


def start_bare(work: Path, workers: int) -> Server:
    port = free_port()
    code = ("import sys; from record_service.server import serve; from record_service.settings import Settings;"
            f"serve(Settings(db_url='sqlite:///unused', data_dir={str(work)!r}, key_file='unused'), '127.0.0.1', "
            f"{port}, {workers}, target='record_service.ceiling:hello_app_from_environment')")
    return Server([sys.executable, "-c", code], port, "/hello", work / "bare.log")


def _cpu_per_request(run: dict) -> dict:
    """Microseconds of CPU per answered request in one phase: the server's and, for GETs, the client's."""
    answered = run.get("passed")  # the checked phases count the answers that passed their check
    if answered is None:
        answered = sum(n for status, n in run["statuses"].items()
                       if status == "2xx/3xx" or (isinstance(status, int) and 200 <= status < 300))
    if not answered:
        return {}
    per_request = {"server": round(run["server_cpu_s"] / answered * 1e6, 1)}
    for part in ("client", "database", "machine"):
        if run.get(f"{part}_cpu_s") is not None:
            per_request[part] = round(run[f"{part}_cpu_s"] / answered * 1e6, 1)
    return per_request


def _read_budget(service: dict, bare: dict) -> dict:
    """Per read, in µs of the whole machine's CPU: what reaching half the bare rate allows, and where it goes.

    With the machine busy in both runs, reads at half the bare "hello" rate may each cost twice a hello.
    Part of that goes, whatever the service does, to an answer of the read's size over the same stack
    (the bare "hello" for a find, the bare 100 KB answer for a retrieve) and to the database server when
    it runs apart (PostgreSQL; SQLite runs inside the service); what is left is the service's own budget.
    """
    hello, document = bare["hello"].get("machine"), bare["document"].get("machine")
    if hello is None or document is None:
        return {}
    budget = {}
    for phase, answer in (("finds", hello), ("retrieves", document)):
        used = service[phase].get("machine")
        if used is None:
            continue
        database = service[phase].get("database", 0.0)
        budget[phase] = {"at_half_the_bare_rate": round(2 * hello, 1), "answer": answer, "database": database,
                         "left_for_the_service": round(2 * hello - answer - database, 1),
                         "service_used": round(used - answer - database, 1)}
    return budget


def settle(seconds: float = 1.0) -> None:
    """Let the previous phase's aftermath pass before the next is measured: a deposit phase leaves some
    400 MB of written pages that the kernel would otherwise flush, on the same two cores, during the reads."""
    os.sync()
    time.sleep(seconds)


def measure_bare(work: Path, load: Load, workers: int) -> dict:
    """The bare server's rates: "hello" (5 bytes) and an answer the size of a retrieved document."""
    settle()
    server = start_bare(work, workers)
    try:
        runs = {"hello": load.get(server, ["/hello"], None), "document": load.get(server, ["/hello-document"], None)}
    finally:
        server.stop()
    for name, run in runs.items():
        print(f"bare {name:8s} (same stack): {run['per_s']:.0f}/s p50 {run['p50_ms']} ms p99 {run['p99_ms']} ms"
              f"  cpu: server {run['server_cpu_s']} s, client {run['client_cpu_s']} s", flush=True)
    return runs


# --- PostgreSQL -----------------------------------------------------------------------------------

class Postgres:
    """A throw-away cluster (run as the 'postgres' account when the bench runs as root)."""

    def __init__(self, work: Path, extra_options: str = ""):
        missing = [t for t in ("initdb", "pg_ctl", "postgres") if shutil.which(t) is None]
        if missing:
            raise SystemExit(f"PostgreSQL binaries missing from PATH: {', '.join(missing)}")
        self.dir = work / "pg"
        self.dir.mkdir()
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            os.chmod(work, 0o777)
            os.chmod(self.dir, 0o777)
        self.port = free_port()
        subprocess.run([*self.prefix, "initdb", "-D", str(self.dir / "data"), "-U", "segur", "-A", "trust",
                        "--no-instructions"], check=True, capture_output=True)
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c shared_buffers=512MB"
                   " -c max_connections=200 -c fsync=on -c synchronous_commit=on " + extra_options)
        subprocess.run([*self.prefix, "pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-o",
                        options, "-w", "start"], check=True, capture_output=True)

    def cpu_seconds(self) -> float:
        """CPU time so far of the cluster: its postmaster and every process it started (backends included)."""
        postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        return _process_cpu_seconds(lambda pid, fields: pid == postmaster or int(fields[1]) == postmaster)

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"postgresql://segur@127.0.0.1:{self.port}/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://segur@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.prefix, "pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True)


# --- raw storage: the same rows and bytes, straight into the same stores ------------------------------

def raw_storage_rate(db_url: str, data_dir: Path, seconds: float, template: DepositTemplate, batch: int = 64) -> dict:
    """Documents/s written the cheapest durable way: fsynced files in parallel, rows in batched transactions."""
    from record_service import schema
    from record_service.bundles import NewDocument, stored_resource
    from record_service.registry import _INSERT, _authors_column
    from record_service.search_index import index_search_values
    from record_service.storage import open_store, prepare
    import hashlib

    settings = Settings(db_url=db_url, data_dir=str(data_dir), key_file="unused")
    prepare(settings)
    blobs = BlobStore(settings.blob_dir)
    if db_url.startswith("sqlite"):
        from record_service.sqlite_store import _SqliteWriteTransaction
        tx = _SqliteWriteTransaction(db_url.removeprefix("sqlite:///"))
    else:
        from record_service.postgres_store import _PostgresWriteTransaction
        tx = _PostgresWriteTransaction(db_url)
    pool = ThreadPoolExecutor(16)
    sample = json.loads(template.body(0))["entry"][1]["resource"]
    done = 0
    n = 10**9  # ids apart from the HTTP run's
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        datas = [template.unique_data(n + i) for i in range(batch)]
        hashes = [hashlib.sha256(d).hexdigest() for d in datas]
        list(pool.map(blobs.put, datas, hashes))
        tx.begin()
        rows = []
        for i, (data, sha) in enumerate(zip(datas, hashes)):
            doc = NewDocument(id=uuid.uuid4().hex, master_id=f"raw-{template.run_id}-{n + i}", type_code="11502-2",
                              date_us=time.time_ns() // 1000, authors=(template.author,),
                              content_type="application/pdf", data=data, sha256=sha, masked=False, replaces=None,
                              resource=sample, entry_index=1)
            rows.append((doc.id, doc.master_id, template.patients[i % len(template.patients)], doc.type_code,
                         doc.date_us, _authors_column(doc.authors), template.author, None, None, doc.content_type,
                         len(data), sha, 0, doc.date_us, stored_resource(doc, doc.date_us), doc.id, doc.id))
        tx.executemany(_INSERT, rows)
        # each deposit is a submission set of its own (here the document's id names it too)
        tx.executemany("INSERT INTO submission_sets (id, unique_id, patient_ins, submission_us, created_us)"
                       " VALUES (?, ?, ?, ?, ?)", [(row[0], f"2.25.{int(row[0], 16)}", row[2], row[4], row[4])
                                                   for row in rows])
        for row in rows:  # the search values a deposit writes too (document_tokens, document_dates)
            index_search_values(tx, row[0], sample, None)
        tx.commit()
        done += batch
        n += batch
    elapsed = time.perf_counter() - started
    tx.close()
    pool.shutdown()
    del schema, open_store
    return {"per_s": round(done / elapsed, 1), "documents": done}


# --- one back end ---------------------------------------------------------------------------------

# the phases of a back end, in their order, and the XDS.b call beside each FHIR one: (pair, FHIR, XDS.b)
PHASES = ("deposits", "xds_deposits", "finds", "xds_finds", "retrieves", "xds_retrieves", "td02", "xds_td02")
PAIRS = (("deposit", "deposits", "xds_deposits"), ("find", "finds", "xds_finds"),
         ("retrieve", "retrieves", "xds_retrieves"), ("td02", "td02", "xds_td02"))
CALLS = {"deposits": "ITI-65", "xds_deposits": "ITI-41", "finds": "ITI-67", "xds_finds": "ITI-18 FindDocuments",
         "retrieves": "ITI-68", "xds_retrieves": "ITI-43", "td02": "TD0.2 (FHIR)", "xds_td02": "TD0.2"}


def bench_backend(name: str, db_url: str | None, work: Path, load: Load, workers: int) -> dict:
    global _TEMPLATE, _ITI41
    work.mkdir(parents=True, exist_ok=True)
    service = start_service(work, db_url, workers)
    key = load_or_create_key(work / "key")
    rng = random.Random(42)
    patients = [make_ins(rng) for _ in range(500)]
    author = luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9)))
    reader = luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9)))
    depositor = issue_token(key, Actor(rpps=author, sector="lab"), 3600)
    professional = issue_token(key, Actor(rpps=reader, sector="town_doctor"), 3600)
    run_id = uuid.uuid4().hex[:8]
    _TEMPLATE = DepositTemplate(depositor, patients, author, run_id)
    # The VIHF assertions, signed ahead by the structure beside the service's --key (the one it trusts): one per
    # professional and patient, reused for every call, as a professional's software reuses its assertion
    # through a consultation. Signing is the client's, ahead of the timed phases: it is not what is measured.
    structure = load_or_create_structure(work / "key")
    finess = structure.structure_id[1:]
    signing = time.perf_counter()
    author_vihf = {ins: issue_assertion(structure, Actor(rpps=author, sector="lab", finess=finess), ins,
                                        expires_in=3600) for ins in patients}
    reader_vihf = {ins: issue_assertion(structure, Actor(rpps=reader, sector="town_doctor", finess=finess), ins,
                                        expires_in=3600) for ins in patients}
    signing = time.perf_counter() - signing
    _ITI41 = Iti41Template(author_vihf, patients, author, finess, run_id)
    td02s = [soap_request(xds.td02(reader_vihf[ins], ins)) for ins in patients]
    try:
        # The service verifies an assertion once per worker and caches it: the first use of each is sent ahead
        # too (TD0.2s of every assertion, over new connections each round so that every worker sees them)
        warming = time.perf_counter()
        for _ in range(8):
            checked(service.port, td02s + [soap_request(xds.td02(author_vihf[ins], ins)) for ins in patients],
                    _td02_open, "TD0.2 (XDS.b) before the phases")
        print(f"{name:10s} {2 * len(patients)} VIHF assertions signed in {signing:.1f} s and verified by the "
              f"service in {time.perf_counter() - warming:.1f} s, ahead of the timed phases", flush=True)
        settle()
        deposits = load.measure(service, lambda: drive(service.port, [], load.connections, load.seconds,
                                                       unique=_unique_deposit), CALLS["deposits"], client="python")
        settle()
        xds_deposits = load.measure(service, lambda: drive(service.port, [], load.connections, load.seconds,
                                                           unique=_unique_iti41, check=_deposited),
                                    CALLS["xds_deposits"], client="python")
        stored = xds_deposits.pop("passed_ids")
        settle()
        by_patient = _document_ids(service.port, professional, patients[:200])
        ids = [doc_id for found in by_patient.values() for doc_id in found]
        # both finds must answer the same documents: ITI-18 FindDocuments (Approved, service start from
        # XDS_FIND_FROM) of each of these patients is checked against its ITI-67 search
        finds_xds = [soap_request(xds.find_documents(reader_vihf[ins], ins, XDS_FIND_FROM)) for ins in patients]
        for ins, (status, body) in zip(by_patient, exchange(service.port, finds_xds[:len(by_patient)])):
            answer = _answer(status, body)
            found = {entry.removeprefix("urn:uuid:").replace("-", "") for entry, _, _ in answer.entries()} \
                if answer is not None and answer.status == xds.SUCCESS else None
            if found != set(by_patient[ins]):
                raise SystemExit(f"ITI-18 FindDocuments of {ins} found {found}, ITI-67 {sorted(by_patient[ins])}: "
                                 f"{body[:600]!r}")
        finds = load.get(service, [f"/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{ins}&status=current"
                                   "&_count=20" for ins in patients], professional, CALLS["finds"])
        xds_finds = load.post(service, finds_xds, "find", _found, CALLS["xds_finds"])
        retrieves = load.get(service, [f"/Binary/{doc_id}" for doc_id in ids], professional, CALLS["retrieves"])
        # ITI-43: the ITI-41 documents of the same 200 patients whose bytes the FHIR retrieves read
        asked = sorted(n for n in stored if n % len(patients) < 200)
        if not asked:
            raise SystemExit("no ITI-41 document was stored: nothing to retrieve over XDS.b")
        retrieves_xds = [soap_request(xds.retrieve(reader_vihf[patients[n % len(patients)]], [_ITI41.unique_id(n)]))
                         for n in asked]
        checked(service.port, retrieves_xds, _retrieved(asked), "ITI-43 before its phase")
        xds_retrieves = load.post(service, retrieves_xds, "retrieve", _retrieved(asked), CALLS["xds_retrieves"],
                                  shared=_ITI41.shared)
        td02 = load.get(service, [f"/Patient?identifier={INS_NIR_SYSTEM}|{ins}" for ins in patients], professional,
                        CALLS["td02"])
        xds_td02 = load.post(service, td02s, "td02", _td02_open, CALLS["xds_td02"])
    except Exception:
        print((work / "serve.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        service.stop()
    raw_url = db_url.rsplit("/", 1)[0] + "/raw_" + name if db_url else f"sqlite:///{work / 'raw' / 'raw.sqlite3'}"
    if db_url:
        raw_url = _POSTGRES.database("raw_" + name)
    (work / "raw").mkdir(exist_ok=True)
    settle()
    raw = raw_storage_rate(raw_url, work / "raw", load.seconds, _TEMPLATE)
    return {"deposits": deposits, "xds_deposits": xds_deposits, "finds": finds, "xds_finds": xds_finds,
            "retrieves": retrieves, "xds_retrieves": xds_retrieves, "td02": td02, "xds_td02": xds_td02,
            "vihf_signed": 2 * len(patients), "vihf_signing_s": round(signing, 2), "raw_storage": raw,
            "deposits_vs_raw_storage": round(deposits["per_s"] / raw["per_s"], 3) if raw["per_s"] else None}


def _document_ids(port: int, token: str, patients: list[str]) -> dict[str, list[str]]:
    """Each patient's document ids, as ITI-67 finds them (all of them: a patient has fewer than 100)."""
    ids: dict[str, list[str]] = {}
    for ins in patients:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{ins}&_count=100",
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            ids[ins] = [e["resource"]["id"] for e in json.loads(response.read()).get("entry", [])]
    if not any(ids.values()):
        raise SystemExit("no document was deposited: nothing to retrieve")
    return ids


def xds_vs_fhir(figures: dict) -> dict:
    """Per pair of calls: each one's rate and server CPU per call (the server's process group over the answers
    that passed; and what the service attributes to the call in its /metrics), and XDS.b over FHIR."""
    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    pairs = {}
    for pair, fhir, xds_phase in PAIRS:
        f, x = figures[fhir], figures[xds_phase]
        fhir_cpu, xds_cpu = _cpu_per_request(f).get("server"), _cpu_per_request(x).get("server")
        fhir_attr = f.get("attributed", {}).get("cpu_us_per_call")
        xds_attr = x.get("attributed", {}).get("cpu_us_per_call")
        pairs[pair] = {"xds_call": CALLS[xds_phase], "fhir_call": CALLS[fhir],
                       "xds_per_s": x["per_s"], "fhir_per_s": f["per_s"], "per_s_ratio": ratio(x["per_s"], f["per_s"]),
                       "xds_server_cpu_us": xds_cpu, "fhir_server_cpu_us": fhir_cpu,
                       "server_cpu_ratio": ratio(xds_cpu, fhir_cpu),
                       "xds_attributed_cpu_us": xds_attr, "fhir_attributed_cpu_us": fhir_attr,
                       "attributed_cpu_ratio": ratio(xds_attr, fhir_attr)}
    return pairs


# --- a corpus on disk: N GB of documents, measured hot and cold against the disk's own ceiling ------------

_CORPUS_TYPES = ("11502-2", "34133-9", "18842-5", "57833-6", "11488-4")  # lab report, summary, discharge, ...


def _disk_bytes(root: Path) -> int:
    """Bytes allocated on disk under ``root`` (what the run occupies on the shared disk)."""
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Corpus:
    """N GB of documents of 100–120 KB, each unique, over patients of about ten documents each, written through
    the service's own storage layout (BlobStore: content-addressed, fsynced, renamed into place) and registered
    the way the raw-storage phase writes rows (the deposit's INSERT, its submission set and search values, in
    batched transactions). The same files serve both back ends: each gets its own registry of them."""

    def __init__(self, gigabytes: float, author: str, seed: int = 7):
        rng = random.Random(seed)
        budget = int(gigabytes * 1e9)
        self.sizes: list[int] = []
        total = 0
        while True:
            size = rng.randint(100_000, 120_000)
            if total + size > budget:
                break
            self.sizes.append(size)
            total += size
        self.bytes = total
        n = len(self.sizes)
        self.ids = [f"{rng.getrandbits(128):032x}" for _ in range(n)]
        self.patients = [make_ins(rng) for _ in range(max(1, n // 10))]
        self.owner = [rng.randrange(len(self.patients)) for _ in range(n)]
        first, last = dt.datetime(2021, 1, 1).timestamp(), dt.datetime(2026, 1, 1).timestamp()
        self.dates_us = [int(rng.uniform(first, last) * 1e6) for _ in range(n)]
        self.types = [rng.choice(_CORPUS_TYPES) for _ in range(n)]
        self.author = author
        self.run = f"{rng.getrandbits(32):08x}"
        self._shared = os.urandom(120_000)
        self.shas: list[str] = [""] * n
        self.sha1s: list[str] = [""] * n
        self.blobs: BlobStore | None = None

    def __len__(self) -> int:
        return len(self.sizes)

    def data(self, i: int) -> bytes:
        return i.to_bytes(12, "big") + self._shared[:self.sizes[i] - 12]

    def path(self, i: int) -> str:
        return str(self.blobs.path(self.shas[i]))

    def write(self, blobs: BlobStore, threads: int = 16) -> dict:
        """Every file, through BlobStore.put (fsynced, renamed into place, directory fsynced), in parallel."""
        self.blobs = blobs

        def one(i: int) -> None:
            data = self.data(i)
            self.shas[i] = hashlib.sha256(data).hexdigest()
            self.sha1s[i] = base64.b64encode(hashlib.sha1(data).digest()).decode()
            blobs.put(data, self.shas[i])

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for done, _ in enumerate(pool.map(one, range(len(self))), 1):
                if done % 5000 == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"  corpus: {done}/{len(self)} files, {rate:.0f}/s, ETA {(len(self) - done) / rate:.0f} s",
                          flush=True)
        elapsed = time.perf_counter() - started
        return {"files": len(self), "bytes": self.bytes, "seconds": round(elapsed, 1),
                "files_per_s": round(len(self) / elapsed, 1), "mb_per_s": round(self.bytes / elapsed / 1e6, 1)}

    def register(self, db_url: str, batch: int = 500) -> dict:
        """The documents' rows in the back end's database (its schema made by ``prepare`` beforehand)."""
        from record_service.bundles import NewDocument, stored_resource
        from record_service.registry import _INSERT, _authors_column
        from record_service.search_index import index_search_values

        if db_url.startswith("sqlite"):
            from record_service.sqlite_store import _SqliteWriteTransaction
            tx = _SqliteWriteTransaction(db_url.removeprefix("sqlite:///"))
        else:
            from record_service.postgres_store import _PostgresWriteTransaction
            tx = _PostgresWriteTransaction(db_url)
        started = time.perf_counter()
        try:
            for start in range(0, len(self), batch):
                tx.begin()
                rows, resources = [], []
                for i in range(start, min(start + batch, len(self))):
                    ins = self.patients[self.owner[i]]
                    when = dt.datetime.fromtimestamp(self.dates_us[i] / 1e6, dt.timezone.utc).isoformat()
                    resource = {
                        "resourceType": "DocumentReference", "status": "current",
                        "masterIdentifier": {"system": "urn:ietf:rfc:3986",
                                             "value": f"urn:uuid:corpus-{self.run}-{i}"},
                        "type": {"coding": [{"system": "http://loinc.org", "code": self.types[i]}]},
                        "subject": {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}}, "date": when,
                        "context": {"period": {"start": when}},
                        "author": [{"identifier": {"system": RPPS_SYSTEM, "value": "8" + self.author}}],
                        "content": [{"attachment": {"contentType": "application/pdf", "url": "urn:uuid:bin",
                                                    "size": self.sizes[i], "hash": self.sha1s[i]}}]}
                    doc = NewDocument(id=self.ids[i], master_id=f"urn:uuid:corpus-{self.run}-{i}",
                                      type_code=self.types[i], date_us=self.dates_us[i], authors=(self.author,),
                                      content_type="application/pdf", data=b"", sha256=self.shas[i], masked=False,
                                      replaces=None, resource=resource, entry_index=1)
                    stored = json.loads(stored_resource(doc, self.dates_us[i]))
                    stored["content"][0]["attachment"]["size"] = self.sizes[i]
                    rows.append((doc.id, doc.master_id, ins, doc.type_code, doc.date_us, _authors_column(doc.authors),
                                 self.author, None, None, doc.content_type, self.sizes[i], self.shas[i], 0,
                                 doc.date_us, json.dumps(stored, separators=(",", ":")).encode(), doc.id, doc.id))
                    resources.append(resource)
                tx.executemany(_INSERT, rows)
                tx.executemany("INSERT INTO submission_sets (id, unique_id, patient_ins, submission_us, created_us)"
                               " VALUES (?, ?, ?, ?, ?)", [(row[0], f"2.25.{int(row[0], 16)}", row[2], row[4], row[4])
                                                           for row in rows])
                for row, resource in zip(rows, resources):
                    index_search_values(tx, row[0], resource, None)
                tx.commit()
        finally:
            tx.close()
        elapsed = time.perf_counter() - started
        return {"rows": len(self), "seconds": round(elapsed, 1), "rows_per_s": round(len(self) / elapsed, 1)}

    def read_all(self, threads: int = 16, indexes: list[int] | None = None) -> None:
        """Read every file once, or those of ``indexes`` (into the page cache)."""
        def one(i: int) -> None:
            fd = os.open(self.path(i), os.O_RDONLY)
            try:
                while os.read(fd, 1 << 20):
                    pass
            finally:
                os.close(fd)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(self)) if indexes is None else indexes))

    def evict(self) -> float:
        """Every corpus file out of the page cache (segur.page_cache.evict: sync, then POSIX_FADV_DONTNEED,
        twice); and a half-second pause, as ``settle`` makes before a phase."""
        _, _, elapsed = page_cache.evict([self.path(i) for i in range(len(self))])
        time.sleep(0.5)
        return elapsed

    def residency(self, sample: int = 500, seed: int = 0) -> dict:
        """Of a random sample of corpus files: how many have no page in the page cache, how many all of them,
        and the fraction of their pages resident (segur.page_cache.residency_sample: mincore)."""
        return page_cache.residency_sample([self.path(i) for i in range(len(self))], sample, seed)


def raw_cold_reads(corpus: Corpus, threads: int, seconds: float) -> dict:
    """The disk's own ceiling: the corpus files (evicted) read whole at random by a plain pool of ``threads``
    threads (open, read, close: what a retrieve does to the file), each file at most once, for ``seconds``."""
    order = list(range(len(corpus)))
    random.Random(11).shuffle(order)
    position = iter(order)
    deadline = time.perf_counter() + seconds
    counts = [0, 0]  # files, bytes
    latencies: list[float] = []

    def worker() -> None:
        files = size = 0
        mine: list[float] = []
        while time.perf_counter() < deadline:
            i = next(position, None)  # one shared iterator: each file once (next() is atomic under the GIL)
            if i is None:
                break
            began = time.perf_counter()
            fd = os.open(corpus.path(i), os.O_RDONLY)
            try:
                data = os.read(fd, corpus.sizes[i] + 1)
            finally:
                os.close(fd)
            mine.append(time.perf_counter() - began)
            files += 1
            size += len(data)
        counts[0] += files
        counts[1] += size
        latencies.extend(mine)

    started = time.perf_counter()
    pool = [__import__("threading").Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else 0.0

    return {"files_per_s": round(counts[0] / elapsed, 1), "mb_per_s": round(counts[1] / elapsed / 1e6, 1),
            "files": counts[0], "threads": threads, "seconds": round(elapsed, 2), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "exhausted": counts[0] >= len(corpus)}


def _ok(run: dict) -> int:
    return sum(n for status, n in run["statuses"].items()
               if status == "2xx/3xx" or (isinstance(status, int) and 200 <= status < 300))


def bench_corpus_backend(name: str, db_url: str | None, work: Path, load: Load, workers: int, corpus: Corpus,
                         blobs_from: Path | None, budget: int, find_connections: int) -> dict:
    """One back end against the corpus: register it, then hot and cold finds, retrieves, deposits, the raw
    cold-read ceiling and finds beside cold retrieves, each phase as long as --seconds (a cold one shorter,
    so that no file is read twice: see ``cold_seconds``)."""
    global _TEMPLATE
    from record_service.storage import prepare

    data_dir = work / "data"
    settings = Settings(db_url=db_url or f"sqlite:///{data_dir / 'records.sqlite3'}", data_dir=str(data_dir),
                        key_file=str(work / "key"))
    figures: dict = {"ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")}
    work.mkdir(parents=True, exist_ok=True)
    # what was on disk before this back end's corpus (PostgreSQL: the empty cluster initdb made, which every
    # run of the bench makes): the budget counts what the corpus run adds to it
    before = _disk_bytes(work.parent) - (_disk_bytes(blobs_from) if blobs_from is not None else 0)
    figures["disk_bytes_before"] = before
    prepare(settings)  # the schema and the store identity, with no file yet (a start removes unnamed files)
    if blobs_from is None:
        print(f"{name:10s} writing the corpus: {len(corpus)} documents, {corpus.bytes / 1e9:.2f} GB", flush=True)
        figures["corpus_write"] = corpus.write(BlobStore(settings.blob_dir))
    else:  # the files another back end registered: moved (a rename, no byte written), page cache and all
        shutil.rmtree(settings.blob_dir)
        os.rename(blobs_from, settings.blob_dir)
        corpus.blobs = BlobStore(settings.blob_dir)
    figures["corpus_register"] = corpus.register(settings.db_url)
    if db_url:  # a loaded database in its steady state: vacuumed and analysed, its WAL checkpointed
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE)")
            connection.execute("CHECKPOINT")
    figures["database_bytes"] = (_disk_bytes(_POSTGRES.dir) - before if db_url else
                                 _disk_bytes(data_dir) - _disk_bytes(settings.blob_dir))
    figures["corpus"] = {"documents": len(corpus), "bytes": corpus.bytes, "patients": len(corpus.patients),
                         "document_bytes": [min(corpus.sizes), max(corpus.sizes)]}
    used = _disk_bytes(work.parent) - before
    print(f"{name:10s} corpus registered: {figures['corpus_register']['rows_per_s']:.0f} rows/s; run on disk "
          f"{used / 1e9:.2f} GB, the database {figures['database_bytes'] / 1e6:.0f} MB of it (budget "
          f"{budget / 1e9:.2f} GB)", flush=True)
    peak = used

    def deposit_limit() -> int:
        """Deposits write 100 KB each: as many as the disk budget leaves now (PostgreSQL checkpointed first,
        so that its WAL is recycled; 40 MB kept for the database's growth), at most 5 % of the corpus a phase,
        at least 16; their files are removed after each phase."""
        if db_url:
            import psycopg

            with psycopg.connect(db_url, autocommit=True) as connection:
                connection.execute("CHECKPOINT")
        room = budget - (_disk_bytes(work.parent) - before) - 40_000_000
        return max(16, min(int(0.05 * corpus.bytes), room) // DOCUMENT_BYTES)

    service = start_service(work, db_url, workers)
    key = load_or_create_key(work / "key")
    reader = luhn_complete("1" + "".join(str(random.Random(5).randint(0, 9)) for _ in range(9)))
    professional = issue_token(key, Actor(rpps=reader, sector="town_doctor"), 3600)
    depositor = issue_token(key, Actor(rpps=corpus.author, sector="lab"), 3600)
    corpus_files = set(corpus.shas)

    def remove_deposited() -> int:
        """The deposits' files (not the corpus's): the disk is shared. Their rows stay (no one reads them)."""
        removed = 0
        for names in corpus.blobs.batches(1000):
            for file in names:
                if not file.startswith(".") and file not in corpus_files:
                    corpus.blobs.remove(file)
                    removed += 1
        return removed

    def deposits(limit: int, timed: bool = True) -> dict:
        """``limit`` new deposits (a template of its own each phase: new masterIdentifiers, new bytes; a repeat
        would be an idempotent no-op), at most --seconds; their files removed after."""
        global _TEMPLATE
        nonlocal peak
        _TEMPLATE = DepositTemplate(depositor, corpus.patients, corpus.author, uuid.uuid4().hex[:8])
        settle()
        run = load.measure(service, lambda: drive(service.port, [], load.connections, load.seconds,
                                                  unique=_unique_deposit, limit=limit), "ITI-65" if timed else None,
                           client="python")
        run.pop("passed_ids", None)
        run["limit"] = limit
        peak = max(peak, _disk_bytes(work.parent) - before)
        run["files_removed_after"] = remove_deposited()
        return run

    def get_direct(paths: list[str], connections: int, seconds: float) -> dict:
        if load.client == "wrk":
            return drive_wrk(service.port, paths, professional, connections, seconds, load.work)
        return drive(service.port, [http_request("GET", p, professional) for p in paths], connections, seconds)

    rng = random.Random(3)
    finds = [f"/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{ins}&status=current&_count=20"
             for ins in corpus.patients]
    rng.shuffle(finds)

    def retrieves() -> list[str]:  # the corpus in a new random order each time: uniform, each file once
        paths = [f"/Binary/{doc_id}" for doc_id in corpus.ids]
        rng.shuffle(paths)
        return paths

    try:
        # the service serves the corpus: its bytes, and finds of its patients
        for i in random.Random(9).sample(range(len(corpus)), 20):
            request = urllib.request.Request(f"http://127.0.0.1:{service.port}/Binary/{corpus.ids[i]}",
                                             headers={"Authorization": f"Bearer {professional}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                if hashlib.sha256(response.read()).hexdigest() != corpus.shas[i]:
                    raise SystemExit(f"{name}: /Binary/{corpus.ids[i]} did not answer the corpus document's bytes")
        found = _document_ids(service.port, professional, corpus.patients[:5])
        expected = {ins: sorted(corpus.ids[i] for i in range(len(corpus)) if corpus.patients[corpus.owner[i]] == ins)
                    for ins in corpus.patients[:5]}
        if {ins: sorted(ids) for ins, ids in found.items()} != expected:
            raise SystemExit(f"{name}: finds of the corpus's patients did not answer their documents")

        # hot: every file read once, then the phases
        began = time.perf_counter()
        corpus.read_all()
        figures["hot_residency"] = corpus.residency()
        print(f"{name:10s} hot: corpus read in {time.perf_counter() - began:.1f} s; sample resident "
              f"{figures['hot_residency']}", flush=True)
        if figures["hot_residency"]["resident_pages_fraction"] < 0.99:
            figures["hot_note"] = "the corpus does not fit in the page cache: the hot phases are partly cold"
        settle()
        figures["hot_finds"] = load.get(service, finds, professional, "ITI-67")
        figures["hot_retrieves"] = load.get(service, retrieves(), professional, "ITI-68")
        deposits(load.connections, timed=False)  # untimed: each worker's first deposits (pools, connections)
        figures["hot_deposits"] = deposits(deposit_limit())
        settle()
        figures["hot_finds_alone"] = get_direct(finds, find_connections, load.seconds)
        with ThreadPoolExecutor(2) as pool:
            beside = pool.submit(get_direct, finds, find_connections, load.seconds)
            hot_load = pool.submit(get_direct, retrieves(), load.connections, load.seconds)
            figures["hot_finds_beside_hot_retrieves"] = beside.result()
            figures["hot_retrieves_beside"] = hot_load.result()

        # cold: the disk's ceiling first (it sizes the cold phases), each cold phase after a new eviction
        figures["evict_s"] = round(corpus.evict(), 2)
        figures["cold_residency_before_raw"] = corpus.residency(seed=1)
        figures["raw_disk"] = raw_cold_reads(corpus, load.connections, load.seconds)
        raw = figures["raw_disk"]
        # a cold phase must not read a file twice (the second read would be hot): as long as --seconds, or
        # shorter when retrieves at the faster of the disk's rate and the hot retrieves' would read 80 % of
        # the corpus sooner (wrk counts whole seconds); checked after the phase (read_a_file_twice)
        bound = max(1.0, min(raw["files_per_s"], figures["hot_retrieves"]["per_s"]))
        cold_seconds = max(1, min(round(load.seconds), int(0.8 * len(corpus) / bound)))
        figures["cold_seconds"] = cold_seconds
        print(f"{name:10s} raw cold reads ({raw['threads']} threads): {raw['files_per_s']:.0f} files/s, "
              f"{raw['mb_per_s']:.0f} MB/s, p99 {raw['p99_ms']} ms; evicted sample "
              f"{figures['cold_residency_before_raw']}; cold phases {cold_seconds} s", flush=True)
        # the stack's own ceiling for an answer of this size, with no storage at all: the same server (Granian,
        # same workers) answering a constant 100 KB body to the same client and connections. When even that is
        # below 0.8 of the raw cold-read rate, cold retrieves cannot reach 0.8 of it on this machine
        figures["bare"] = measure_bare(work, load, workers)
        # the disk at the service's own concurrency: as many threads as its workers have read threads
        corpus.evict()
        figures["raw_disk_service_threads"] = raw_cold_reads(corpus, workers * settings.blob_read_threads,
                                                             load.seconds)
        cold_load = Load(load.client, load.connections, cold_seconds, load.work)
        cold_load.database = load.database

        corpus.evict()
        figures["cold_residency"] = corpus.residency(seed=2)
        figures["cold_retrieves"] = cold_load.get(service, retrieves(), professional, "ITI-68")
        figures["cold_retrieves"]["read_twice"] = figures["cold_retrieves"]["requests"] > len(corpus)
        figures["cold_residency_after_retrieves"] = corpus.residency(seed=3)

        corpus.evict()
        figures["cold_finds"] = load.get(service, finds, professional, "ITI-67")
        figures["finds_alone"] = get_direct(finds, find_connections, cold_seconds)
        corpus.evict()
        figures["cold_residency_before_beside"] = corpus.residency(seed=4)
        with ThreadPoolExecutor(2) as pool:
            beside = pool.submit(get_direct, finds, find_connections, cold_seconds)
            cold = pool.submit(get_direct, retrieves(), load.connections, cold_seconds)
            figures["finds_beside_cold_retrieves"] = beside.result()
            figures["cold_retrieves_beside_finds"] = cold.result()

        # finds beside retrieves at fixed rates (open model, well under the capacities just measured): whether
        # a retrieve that waits for the disk stalls the other requests of its worker, not how two saturating
        # loads share 2 cores. The rule: finds at OPEN_FIND_SHARE of the closed-loop cold finds rate, retrieves
        # at OPEN_RETRIEVE_SHARE of the closed-loop cold retrieves rate; finds alone, beside cold retrieves
        # (freshly evicted files, each once), beside hot retrieves at the same rate (the control: files read
        # just before), and alone again (the noise of "alone")
        find_rate = round(OPEN_FIND_SHARE * figures["cold_finds"]["per_s"], 1)
        retrieve_rate = round(OPEN_RETRIEVE_SHARE * figures["cold_retrieves"]["per_s"], 1)
        open_seconds = max(1, min(2 * round(load.seconds), int(0.8 * len(corpus) / max(1.0, retrieve_rate))))
        find_requests = [http_request("GET", p, professional) for p in finds]
        figures["open_rates"] = {"finds_per_s": find_rate, "retrieves_per_s": retrieve_rate, "seconds": open_seconds,
                                 "rule": f"finds at {OPEN_FIND_SHARE} of the cold finds' closed-loop rate, retrieves "
                                         f"at {OPEN_RETRIEVE_SHARE} of the cold retrieves' closed-loop rate"}

        def open_phase(indexes: list[int] | None) -> tuple[dict, dict | None]:
            loads = [(find_requests, find_rate)]
            if indexes is not None:
                loads.append(([http_request("GET", f"/Binary/{corpus.ids[i]}", professional) for i in indexes],
                              retrieve_rate))
            settle(0.5)
            run = load.measure(service, lambda: {"runs": drive_open(service.port, loads, open_seconds)},
                               client="python")
            runs = run.pop("runs")
            runs[0].update(run)
            runs[0]["machine_busy"] = round(run["machine_cpu_s"] / ((os.cpu_count() or 1) * open_seconds), 3)
            return runs[0], (runs[1] if len(runs) > 1 else None)

        order = list(range(len(corpus)))
        rng.shuffle(order)
        wanted = int(retrieve_rate * open_seconds) + 1
        figures["open_finds_alone"], _ = open_phase(None)
        corpus.evict()
        figures["cold_residency_before_open"] = corpus.residency(seed=5)
        figures["open_finds_beside_cold"], figures["open_cold_retrieves"] = open_phase(order[:wanted])
        hot_files = order[wanted:2 * wanted]
        corpus.read_all(indexes=hot_files)
        figures["open_finds_beside_hot"], figures["open_hot_retrieves"] = open_phase(hot_files)
        figures["open_finds_alone_again"], _ = open_phase(None)
        print(f"{name:10s} open model ({open_seconds} s): finds at {find_rate}/s alone p99 "
              f"{figures['open_finds_alone']['p99_ms']} / {figures['open_finds_alone_again']['p99_ms']} ms; beside "
              f"cold retrieves at {retrieve_rate}/s p99 {figures['open_finds_beside_cold']['p99_ms']} ms (retrieves "
              f"p99 {figures['open_cold_retrieves']['p99_ms']} ms); beside hot retrieves p99 "
              f"{figures['open_finds_beside_hot']['p99_ms']} ms; machine busy "
              f"{figures['open_finds_beside_cold']['machine_busy']} / {figures['open_finds_beside_hot']['machine_busy']}",
              flush=True)

        corpus.evict()
        figures["cold_deposits"] = deposits(deposit_limit())
    except Exception:
        print((work / "serve.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        service.stop()
    figures["disk_bytes_peak"] = max(peak, _disk_bytes(work.parent) - before)
    figures["disk_budget_bytes"] = budget

    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    figures["cold_retrieves_vs_raw_disk"] = ratio(figures["cold_retrieves"]["per_s"], raw["files_per_s"])
    # what the service's CPU allows at best on this machine: hot retrieves over the same raw cold-read rate
    figures["hot_retrieves_vs_raw_disk"] = ratio(figures["hot_retrieves"]["per_s"], raw["files_per_s"])
    figures["bare_document_vs_raw_disk"] = ratio(figures["bare"]["document"]["per_s"], raw["files_per_s"])
    # the open model's: finds at a fixed rate beside retrieves at a fixed rate, over finds alone (the lower of
    # the two runs alone, one before and one after: the quieter one, which does not flatter the ratio)
    alone = min(figures["open_finds_alone"]["p99_ms"], figures["open_finds_alone_again"]["p99_ms"])
    figures["finds_p99_beside_cold_vs_alone"] = ratio(figures["open_finds_beside_cold"]["p99_ms"], alone)
    figures["finds_p99_beside_hot_vs_alone"] = ratio(figures["open_finds_beside_hot"]["p99_ms"], alone)
    # the earlier figure: two closed loops at once, both saturating the machine (CPU shared, mostly)
    figures["finds_p99_beside_cold_vs_alone_saturating"] = ratio(figures["finds_beside_cold_retrieves"]["p99_ms"],
                                                                 figures["finds_alone"]["p99_ms"])
    figures["finds_p99_beside_hot_vs_alone_saturating"] = ratio(figures["hot_finds_beside_hot_retrieves"]["p99_ms"],
                                                                figures["hot_finds_alone"]["p99_ms"])
    figures["cold_vs_hot"] = {kind: {"per_s": ratio(figures[f"cold_{kind}"]["per_s"], figures[f"hot_{kind}"]["per_s"]),
                                     "p99": ratio(figures[f"cold_{kind}"]["p99_ms"], figures[f"hot_{kind}"]["p99_ms"])}
                              for kind in ("finds", "retrieves", "deposits")}
    return figures


CORPUS_PHASES = ("finds", "retrieves", "deposits")
OPEN_FIND_SHARE = 0.05  # finds beside retrieves, open model: this share of the cold finds' closed-loop rate
OPEN_RETRIEVE_SHARE = 0.25  # and retrieves at this share of the cold retrieves' closed-loop rate


def corpus_summary(name: str, f: dict, find_connections: int) -> dict:
    """The figures of one back end as the JSON line gives them (and prints them)."""
    s = {"finds_connections": find_connections, "cold_retrieves_vs_raw_disk": f["cold_retrieves_vs_raw_disk"],
         "hot_retrieves_vs_raw_disk": f["hot_retrieves_vs_raw_disk"],
         "bare_document_vs_raw_disk": f["bare_document_vs_raw_disk"],
         "bare_document_per_s": f["bare"]["document"]["per_s"], "bare_hello_per_s": f["bare"]["hello"]["per_s"],
         "bare_document_cpu_us": _cpu_per_request(f["bare"]["document"]),
         "finds_p99_beside_cold_vs_alone": f["finds_p99_beside_cold_vs_alone"],
         "finds_p99_beside_hot_vs_alone": f["finds_p99_beside_hot_vs_alone"],
         "finds_p99_beside_cold_vs_alone_saturating": f["finds_p99_beside_cold_vs_alone_saturating"],
         "finds_p99_beside_hot_vs_alone_saturating": f["finds_p99_beside_hot_vs_alone_saturating"],
         "open_rates": f["open_rates"],
         "raw_disk_files_per_s": f["raw_disk"]["files_per_s"], "raw_disk_mb_per_s": f["raw_disk"]["mb_per_s"],
         "raw_disk_p99_ms": f["raw_disk"]["p99_ms"], "raw_disk_threads": f["raw_disk"]["threads"],
         "raw_disk_service_threads": {k: f["raw_disk_service_threads"][k] for k in
                                      ("files_per_s", "mb_per_s", "threads", "p50_ms", "p99_ms", "exhausted")},
         "cold_seconds": f["cold_seconds"], "cold_vs_hot": f["cold_vs_hot"]}
    for regime in ("hot", "cold"):
        for kind in CORPUS_PHASES:
            run = f[f"{regime}_{kind}"]
            s[f"{regime}_{kind}_per_s"] = run["per_s"]
            s[f"{regime}_{kind}_p50_ms"] = run["p50_ms"]
            s[f"{regime}_{kind}_p99_ms"] = run["p99_ms"]
            s[f"{regime}_{kind}_cpu_us"] = _cpu_per_request(run)
    s["cold_retrieves_mb_per_s"] = round(f["cold_retrieves"]["per_s"] * f["corpus"]["bytes"] / f["corpus"]["documents"]
                                         / 1e6, 1)
    s["cold_retrieves_read_a_file_twice"] = f["cold_retrieves"]["read_twice"]
    s["cold_retrieves_non_2xx"] = f["cold_retrieves"]["requests"] - _ok(f["cold_retrieves"])
    for key in ("finds_alone", "finds_beside_cold_retrieves", "cold_retrieves_beside_finds", "hot_finds_alone",
                "hot_finds_beside_hot_retrieves", "hot_retrieves_beside"):
        s[key] = {k: f[key][k] for k in ("per_s", "p50_ms", "p99_ms", "requests")}
    for key in ("open_finds_alone", "open_finds_beside_cold", "open_cold_retrieves", "open_finds_beside_hot",
                "open_hot_retrieves", "open_finds_alone_again"):
        s[key] = {k: f[key][k] for k in ("offered_per_s", "per_s", "p50_ms", "p99_ms", "max_ms", "requests",
                                         "send_late_p99_ms") if k in f[key]}
        if "machine_busy" in f[key]:
            s[key]["machine_busy"] = f[key]["machine_busy"]
    for key in ("hot_residency", "cold_residency_before_raw", "cold_residency", "cold_residency_after_retrieves",
                "cold_residency_before_beside", "cold_residency_before_open"):
        s[key] = f[key]
    for key in ("corpus", "corpus_register", "database_bytes", "evict_s", "ram_bytes", "disk_bytes_peak",
                "disk_budget_bytes", "disk_bytes_before"):
        s[key] = f[key]
    s["disk_budget_kept"] = f["disk_bytes_peak"] <= f["disk_budget_bytes"]
    if "corpus_write" in f:
        s["corpus_write"] = f["corpus_write"]
    s["deposit_limits"] = [f["hot_deposits"]["limit"], f["cold_deposits"]["limit"]]
    if "hot_note" in f:
        s["hot_note"] = f["hot_note"]
    for kind in CORPUS_PHASES:
        print(f"{name:10s} {kind:9s} hot {s[f'hot_{kind}_per_s']:8.0f}/s p99 {s[f'hot_{kind}_p99_ms']:7.2f} ms | "
              f"cold {s[f'cold_{kind}_per_s']:8.0f}/s p99 {s[f'cold_{kind}_p99_ms']:7.2f} ms | cold/hot rate "
              f"{f['cold_vs_hot'][kind]['per_s']} p99 {f['cold_vs_hot'][kind]['p99']}", flush=True)
    print(f"{name:10s} cold retrieves {s['cold_retrieves_per_s']:.0f}/s ({s['cold_retrieves_mb_per_s']} MB/s) against "
          f"raw cold reads {s['raw_disk_files_per_s']:.0f} files/s ({s['raw_disk_mb_per_s']} MB/s, "
          f"{s['raw_disk_threads']} threads): cold_retrieves_vs_raw_disk {s['cold_retrieves_vs_raw_disk']} (hot "
          f"retrieves over the same: {s['hot_retrieves_vs_raw_disk']}; the bare server's constant 100 KB answer, no "
          f"storage: {s['bare_document_per_s']:.0f}/s, {s['bare_document_vs_raw_disk']}; raw reads with the service's "
          f"{s['raw_disk_service_threads']['threads']} read threads: {s['raw_disk_service_threads']['files_per_s']:.0f}"
          f" files/s)", flush=True)
    print(f"{name:10s} saturating (closed loops): finds ({s['finds_connections']} connections) alone "
          f"{s['finds_alone']['per_s']:.0f}/s p99 {s['finds_alone']['p99_ms']} ms; beside cold retrieves "
          f"({s['cold_retrieves_beside_finds']['per_s']:.0f}/s) {s['finds_beside_cold_retrieves']['per_s']:.0f}/s p99 "
          f"{s['finds_beside_cold_retrieves']['p99_ms']} ms: {s['finds_p99_beside_cold_vs_alone_saturating']} (beside "
          f"hot retrieves {s['finds_p99_beside_hot_vs_alone_saturating']})", flush=True)
    print(f"{name:10s} open model ({s['open_rates']['rule']}: finds {s['open_rates']['finds_per_s']}/s, retrieves "
          f"{s['open_rates']['retrieves_per_s']}/s): finds p99 alone {s['open_finds_alone']['p99_ms']} / "
          f"{s['open_finds_alone_again']['p99_ms']} ms, beside cold retrieves {s['open_finds_beside_cold']['p99_ms']} "
          f"ms, beside hot {s['open_finds_beside_hot']['p99_ms']} ms: finds_p99_beside_cold_vs_alone "
          f"{s['finds_p99_beside_cold_vs_alone']} (hot control {s['finds_p99_beside_hot_vs_alone']})", flush=True)
    print(f"{name:10s} evicted samples (of {s['cold_residency']['files']} files, none of whose pages should be "
          f"resident): before raw reads {s['cold_residency_before_raw']['with_no_page_resident']}, before cold "
          f"retrieves {s['cold_residency']['with_no_page_resident']}, before finds beside "
          f"{s['cold_residency_before_beside']['with_no_page_resident']}", flush=True)
    return s


def run_corpus(args, load: Load, work: Path) -> None:
    """``--corpus-gb N``: the corpus phases on each back end, and the JSON line of their figures."""
    global _POSTGRES
    budget = int(args.corpus_gb * 1e9 * 1.10)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    rng = random.Random(42)
    author = luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9)))
    # N GB on disk for the corpus as the service stores it: its files and its registry (rows, indexes, WAL),
    # so the files take 95 % of it; the rest of the budget (N GB + 10 %) is the deposits' and the reads' room
    corpus = Corpus(args.corpus_gb * 0.95, author)
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    fits = corpus.bytes < 0.8 * available
    print(f"corpus of {args.corpus_gb:g} GB: {len(corpus)} documents of 100-120 KB ({corpus.bytes / 1e9:.2f} GB of "
          f"files, the rest for their registry) over {len(corpus.patients)} patients; RAM {ram / 1e9:.1f} GB, available {available / 1e9:.1f} GB: "
          + ("the corpus fits in the page cache (hot = all cached)" if fits else
             "the corpus does NOT fit in the page cache: the hot phases are partly cold"), flush=True)
    find_connections = max(1, args.connections // 8)
    results: dict[str, dict] = {}
    blobs_from: Path | None = None
    started = time.perf_counter()
    for backend in args.backends.split(","):
        db_url = None
        if backend == "postgresql":
            # WAL kept small (it counts against the disk budget): a checkpoint after the bulk registration
            # leaves min_wal_size of it
            _POSTGRES = _POSTGRES or Postgres(work, "-c min_wal_size=32MB -c max_wal_size=128MB")
            db_url = _POSTGRES.database("corpus")
        load.database = _POSTGRES if db_url else None
        figures = bench_corpus_backend(backend, db_url, work / backend, load, args.workers, corpus, blobs_from,
                                       budget, find_connections)
        load.database = None
        results[backend] = corpus_summary(backend, figures, find_connections)
        # the next back end takes the same files (moved, not copied); this one's database and rest go
        blobs_from = work / f"corpus-blobs-{backend}"
        os.rename(work / backend / "data" / "blobs", blobs_from)
        shutil.rmtree(work / backend, ignore_errors=True)
        if db_url:
            _POSTGRES.stop()
            shutil.rmtree(_POSTGRES.dir, ignore_errors=True)
            _POSTGRES = None
    summary: dict = {}
    cold = [(f["cold_retrieves_vs_raw_disk"], b) for b, f in results.items()
            if f["cold_retrieves_vs_raw_disk"] is not None]
    beside = [(f["finds_p99_beside_cold_vs_alone"], b) for b, f in results.items()
              if f["finds_p99_beside_cold_vs_alone"] is not None]
    summary["cold_retrieves_vs_raw_disk"] = min(cold)[0] if cold else None
    summary["cold_retrieves_vs_raw_disk_backend"] = min(cold)[1] if cold else None
    summary["finds_p99_beside_cold_vs_alone"] = max(beside)[0] if beside else None
    summary["finds_p99_beside_cold_vs_alone_backend"] = max(beside)[1] if beside else None
    summary.update(results)
    summary.update({"corpus_gb": args.corpus_gb, "corpus_documents": len(corpus), "corpus_bytes": corpus.bytes,
                    "ram_bytes": ram, "corpus_fits_in_page_cache": fits, "client": args.client,
                    "connections": args.connections, "finds_connections": find_connections, "workers": args.workers,
                    "seconds": args.seconds, "elapsed_s": round(time.perf_counter() - started, 1)})
    print(f"least favourable: cold_retrieves_vs_raw_disk {summary['cold_retrieves_vs_raw_disk']} "
          f"({summary['cold_retrieves_vs_raw_disk_backend']}), finds_p99_beside_cold_vs_alone "
          f"{summary['finds_p99_beside_cold_vs_alone']} ({summary['finds_p99_beside_cold_vs_alone_backend']})",
          flush=True)
    print(json.dumps(summary))


_POSTGRES: Postgres | None = None


def main() -> None:
    global _POSTGRES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each measured phase")
    parser.add_argument("--connections", type=int, default=64,
                        help="concurrent keep-alive connections (of every phase, the bare server's included)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the service and of the bare server")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python",
                        help="load client of the GET phases (bare, finds, retrieves); default wrk when installed")
    parser.add_argument("--corpus-gb", type=float, default=None,
                        help="measure against a corpus of this many GB on disk, hot and cold (instead of the phases "
                             "above)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="segur-bench-"))
    load = Load(args.client, args.connections, args.seconds, work)
    print(f"client {args.client}, {args.connections} connections, {args.seconds:g} s a phase; {args.workers} server "
          f"workers; {os.cpu_count()} cores", flush=True)
    if args.corpus_gb is not None:
        try:
            run_corpus(args, load, work)
        finally:  # the corpus goes, whatever happened (the disk is shared)
            if _POSTGRES is not None:
                _POSTGRES.stop()
            shutil.rmtree(work, ignore_errors=True)
        return
    results: dict[str, dict] = {}
    bare_runs: list[dict] = []
    try:
        bare_runs.append(measure_bare(work, load, args.workers))
        for backend in args.backends.split(","):
            db_url = None
            if backend == "postgresql":
                _POSTGRES = _POSTGRES or Postgres(work)
                db_url = _POSTGRES.database("bench")
            load.database = _POSTGRES if db_url else None
            figures = bench_backend(backend, db_url, work / backend, load, args.workers)
            load.database = None
            results[backend] = figures
            for phase in PHASES:
                f = figures[phase]
                per_call = _cpu_per_request(f)
                checks = f" checks failed {f['failed_checks']}" if "failed_checks" in f else ""
                print(f"{backend:10s} {phase:13s} {CALLS[phase]:20s} {f['per_s']:8.0f}/s  p50 {f['p50_ms']:7.2f} ms  "
                      f"p99 {f['p99_ms']:7.2f} ms  statuses {f['statuses']}{checks}  cpu µs/call: "
                      + ", ".join(f"{part} {value}" for part, value in per_call.items())
                      + f", attributed by the service {f.get('attributed', {}).get('cpu_us_per_call', '-')}"
                      f" ({f['client']})", flush=True)
            for pair, values in xds_vs_fhir(figures).items():
                print(f"{backend:10s} xds_vs_fhir {pair:8s} {values['xds_call']} / {values['fhir_call']}: rate "
                      f"{values['xds_per_s']:.0f} / {values['fhir_per_s']:.0f} = {values['per_s_ratio']}; server cpu "
                      f"µs/call {values['xds_server_cpu_us']} / {values['fhir_server_cpu_us']} = "
                      f"{values['server_cpu_ratio']}; attributed {values['xds_attributed_cpu_us']} / "
                      f"{values['fhir_attributed_cpu_us']} = {values['attributed_cpu_ratio']}", flush=True)
            print(f"{backend:10s} raw storage {figures['raw_storage']['per_s']:.0f} documents/s; deposits_vs_raw_storage "
                  f"{figures['deposits_vs_raw_storage']}", flush=True)
            bare_runs.append(measure_bare(work, load, args.workers))
    finally:
        if _POSTGRES is not None:
            _POSTGRES.stop()
        shutil.rmtree(work, ignore_errors=True)
    # the machine's speed drifts by ±15 % from one 4-second phase to the next (a shared VM): the ceiling
    # is the median of the bare runs made before, between and after the back ends, not a single draw
    bare = statistics.median(run["hello"]["per_s"] for run in bare_runs)
    bare_document = statistics.median(run["document"]["per_s"] for run in bare_runs)
    for backend, f in results.items():
        f["finds_vs_bare"] = round(f["finds"]["per_s"] / bare, 3)
        f["retrieves_vs_bare"] = round(f["retrieves"]["per_s"] / bare, 3)
        f["reads_vs_bare"] = min(f["finds_vs_bare"], f["retrieves_vs_bare"])
        f["retrieves_vs_bare_same_size"] = round(f["retrieves"]["per_s"] / bare_document, 3)
        print(f"{backend:10s} reads_vs_bare {f['reads_vs_bare']} (finds {f['finds_vs_bare']}, retrieves "
              f"{f['retrieves_vs_bare']}; retrieves vs a bare {DOCUMENT_BYTES // 1024} KB answer "
              f"{f['retrieves_vs_bare_same_size']}), deposits_vs_raw_storage {f['deposits_vs_raw_storage']}", flush=True)
    summary = {backend: {"reads_vs_bare": f["reads_vs_bare"], "deposits_vs_raw_storage": f["deposits_vs_raw_storage"],
                         "finds_vs_bare": f["finds_vs_bare"], "retrieves_vs_bare": f["retrieves_vs_bare"],
                         "retrieves_vs_bare_same_size": f["retrieves_vs_bare_same_size"],
                         "deposits_per_s": f["deposits"]["per_s"], "finds_per_s": f["finds"]["per_s"],
                         "retrieves_per_s": f["retrieves"]["per_s"], "raw_storage_per_s": f["raw_storage"]["per_s"],
                         "deposit_p50_ms": f["deposits"]["p50_ms"], "deposit_p99_ms": f["deposits"]["p99_ms"],
                         "find_p50_ms": f["finds"]["p50_ms"], "find_p99_ms": f["finds"]["p99_ms"],
                         "retrieve_p50_ms": f["retrieves"]["p50_ms"], "retrieve_p99_ms": f["retrieves"]["p99_ms"]}
               for backend, f in results.items()}
    for backend, f in results.items():  # where each request's CPU goes: the gap to the bare rate, itemised
        for phase in ("xds_deposits", "xds_finds", "xds_retrieves", "td02", "xds_td02"):
            summary[backend].update({f"{phase}_per_s": f[phase]["per_s"], f"{phase}_p50_ms": f[phase]["p50_ms"],
                                     f"{phase}_p99_ms": f[phase]["p99_ms"]})
        summary[backend]["cpu_us_per_request"] = {phase: _cpu_per_request(f[phase]) for phase in PHASES}
        summary[backend]["attributed_cpu_us_per_call"] = {  # the service's own attribution (/metrics)
            CALLS[phase]: f[phase].get("attributed", {}).get("cpu_us_per_call") for phase in PHASES}
        summary[backend]["xds_checks_failed"] = {phase: f[phase].get("failed_checks") for phase in PHASES
                                                 if phase.startswith("xds_")}
        summary[backend]["xds_vs_fhir"] = xds_vs_fhir(f)
    median_bare_run = sorted(bare_runs, key=lambda run: run["hello"]["per_s"])[len(bare_runs) // 2]
    summary["bare_cpu_us_per_request"] = {name: _cpu_per_request(median_bare_run[name])
                                          for name in ("hello", "document")}
    for backend, f in results.items():
        summary[backend]["read_budget_us"] = _read_budget(summary[backend]["cpu_us_per_request"],
                                                          summary["bare_cpu_us_per_request"])
        for phase, budget in summary[backend]["read_budget_us"].items():
            print(f"{backend:10s} {phase:9s} half the bare rate allows {budget['at_half_the_bare_rate']} µs of machine CPU;"
                  f" its answer's size costs {budget['answer']}, the database {budget['database']}: "
                  f"{budget['left_for_the_service']} left for the service, which used {budget['service_used']}",
                  flush=True)
    summary["bare_per_s"] = bare
    summary["bare_runs_per_s"] = [run["hello"]["per_s"] for run in bare_runs]
    summary["bare_document_per_s"] = bare_document
    summary["client"] = args.client
    summary["connections"] = args.connections
    summary["workers"] = args.workers
    summary["document_bytes"] = DOCUMENT_BYTES
    summary["seconds"] = args.seconds
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
