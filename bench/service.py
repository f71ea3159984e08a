"""Benchmark of the record service over HTTP on 127.0.0.1, on SQLite and PostgreSQL, with this machine's ceilings.

For each back end, in one run and bounded in time:
- deposits/s of 100 KB documents (ITI-65), finds/s (ITI-67) and retrieves/s (ITI-68, 100 KB back), with
  p50/p99 latency; every professional read also writes its access-history row, as in production;
- the ceilings: the same server stack answering a bare "hello" (no storage, no token), and raw storage:
  the same rows and bytes written straight into the same database and file store (fsynced files, batched
  transactions, no HTTP, no JSON, no checks). The bare server is measured before, between and after the
  back ends, and the median taken: on this shared VM one 4-second phase differs from the next by ±15 %.
  It also answers a constant 100 KB body, the ceiling for a retrieve of that size.
The last line is one JSON object: per back end, reads_vs_bare (the slower of finds and retrieves over the
bare "hello" rate; also each of them apart, and retrieves over the bare 100 KB rate) and
deposits_vs_raw_storage, with every figure behind them, and the CPU each request cost the server, the
client, the PostgreSQL cluster and the whole machine in each phase (``cpu_us_per_request``; the bare
server's in ``bare_cpu_us_per_request``): where the gap to the bare rate goes. ``read_budget_us`` turns
that into a budget per read: of the machine CPU that half the bare rate allows a read, what an answer of
its size and the database cost whatever the service does, what that leaves the service, and what it used.

The load client: the bare endpoint, finds and retrieves are all driven by the same client with the same
connections, against the same server (Granian, same worker count) on 127.0.0.1: `wrk` (a native load
generator, Debian package `wrk`) when it is on PATH, else this file's asyncio client. On this 2-core
machine the client shares the CPU with the server, so a client that costs as much as the server's own
work (the asyncio client does, at the bare endpoint's rate) caps the bare rate and flatters the ratio;
each phase therefore reports the client's and the server's CPU seconds. Deposits (each body unique,
100 KB) always use the asyncio client, whose cost is small beside a deposit's.

Why 64 connections: the client is a closed loop, so its rate is connections / latency until the server's
CPU is the limit. A professional's read waits for its access-history row to be fsynced (about a
millisecond here), so 32 connections left a fifth of the CPU idle during finds and measured that wait,
not the service's capacity (finds 13.7 k/s at 32, 16.6 k/s at 64, 16.2 k/s at 128); the bare server's
rate is the same at 32, 64 and 128 within the machine's noise.

    uv run python bench/service.py [--seconds 4] [--connections 64] [--workers 2] [--client wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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

from record_service.auth import Actor, issue_token, load_or_create_key  # noqa: E402
from record_service.blobs import BlobStore  # noqa: E402
from record_service.ceiling import DOCUMENT_BYTES  # noqa: E402
from record_service.settings import Settings  # noqa: E402
from segur.identifiers import INS_NIR_SYSTEM, RPPS_SYSTEM, ins_key, luhn_complete  # noqa: E402

SEGUR = str(Path(sys.executable).parent / "segur")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the load client: raw HTTP/1.1 keep-alive over asyncio, in its own process --------------------

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status, length


async def _drive(port: int, requests: list[bytes], connections: int, seconds: float, unique) -> dict:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(10**12))

    async def one_connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        i = offset
        while time.perf_counter() < deadline:
            request = unique(requests, next(counter)) if unique else requests[i % len(requests)]
            i += connections
            started = time.perf_counter()
            writer.write(request)
            status, _ = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(k) for k in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else 0.0

    return {"per_s": round(ok / elapsed, 1), "requests": len(latencies), "statuses": statuses,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def _client_process(port, requests, connections, seconds, unique, out) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_drive(port, requests, connections, seconds, unique)))


def drive(port: int, requests: list[bytes], connections: int, seconds: float, unique=None) -> dict:
    """Run the load from a separate process (so the bench's own bookkeeping does not slow it)."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    process = context.Process(target=_client_process, args=(port, requests, connections, seconds, unique, out))
    process.start()
    result = out.get(timeout=seconds + 120)
    process.join(30)
    return result


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


class Load:
    """The GET client of this run (the same for the bare endpoint and the service), with CPU accounting."""

    def __init__(self, client: str, connections: int, seconds: float, work: Path):
        self.client, self.connections, self.seconds, self.work = client, connections, seconds, work
        self.database: "Postgres | None" = None  # a database server of its own, whose CPU is counted apart

    def get(self, server: "Server", paths: list[str], token: str | None) -> dict:
        before_server, before_client = server.cpu_seconds(), _children_cpu_seconds()
        before_machine = _machine_cpu_seconds()
        before_database = self.database.cpu_seconds() if self.database else None
        if self.client == "wrk":
            result = drive_wrk(server.port, paths, token, self.connections, self.seconds, self.work)
        else:
            result = drive(server.port, [http_request("GET", p, token) for p in paths], self.connections,
                           self.seconds)
        result["client"] = self.client
        result["server_cpu_s"] = round(server.cpu_seconds() - before_server, 2)
        result["client_cpu_s"] = round(_children_cpu_seconds() - before_client, 2)
        result["machine_cpu_s"] = round(_machine_cpu_seconds() - before_machine, 2)
        if before_database is not None:
            result["database_cpu_s"] = round(self.database.cpu_seconds() - before_database, 2)
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

    def __init__(self, work: Path):
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
                   " -c max_connections=200 -c fsync=on -c synchronous_commit=on")
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

def bench_backend(name: str, db_url: str | None, work: Path, load: Load, workers: int) -> dict:
    global _TEMPLATE
    work.mkdir(parents=True, exist_ok=True)
    service = start_service(work, db_url, workers)
    key = load_or_create_key(work / "key")
    rng = random.Random(42)
    patients = [make_ins(rng) for _ in range(500)]
    author = luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9)))
    reader = luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9)))
    depositor = issue_token(key, Actor(rpps=author, sector="lab"), 3600)
    professional = issue_token(key, Actor(rpps=reader, sector="town_doctor"), 3600)
    _TEMPLATE = DepositTemplate(depositor, patients, author, uuid.uuid4().hex[:8])
    try:
        before = service.cpu_seconds()
        settle()
        deposits = drive(service.port, [], load.connections, load.seconds, unique=_unique_deposit)
        deposits.update(client="python", server_cpu_s=round(service.cpu_seconds() - before, 2))
        settle()
        ids = _document_ids(service.port, professional, patients[:200])
        finds = load.get(service, [f"/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{ins}&status=current"
                                   "&_count=20" for ins in patients], professional)
        retrieves = load.get(service, [f"/Binary/{doc_id}" for doc_id in ids], professional)
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
    return {"deposits": deposits, "finds": finds, "retrieves": retrieves, "raw_storage": raw,
            "deposits_vs_raw_storage": round(deposits["per_s"] / raw["per_s"], 3) if raw["per_s"] else None}


def _document_ids(port: int, token: str, patients: list[str]) -> list[str]:
    ids: list[str] = []
    for ins in patients:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{ins}&_count=100",
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            ids += [e["resource"]["id"] for e in json.loads(response.read())["entry"]]
    if not ids:
        raise SystemExit("no document was deposited: nothing to retrieve")
    return ids


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
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="segur-bench-"))
    load = Load(args.client, args.connections, args.seconds, work)
    print(f"client {args.client}, {args.connections} connections, {args.seconds:g} s a phase; {args.workers} server "
          f"workers; {os.cpu_count()} cores", flush=True)
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
            for phase in ("deposits", "finds", "retrieves"):
                f = figures[phase]
                print(f"{backend:10s} {phase:9s} {f['per_s']:8.0f}/s  p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms"
                      f"  statuses {f['statuses']}  cpu: server {f['server_cpu_s']} s, client "
                      f"{f.get('client_cpu_s', '-')} s ({f['client']})", flush=True)
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
        summary[backend]["cpu_us_per_request"] = {phase: _cpu_per_request(f[phase]) for phase in
                                                  ("deposits", "finds", "retrieves")}
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
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
