"""One step of a plan: replay the window at one speed-up, and measure what came back.

The replay runs in its own Locust process (`segur load`'s command line), so the driver's CPU
is measured apart from the service's: a step tells how busy each side was.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import urllib.request

from load import locust_report
from load.command import locust_command
from load.service_metrics import cpu_per_call_us
import psutil

from planner import disk
from planner.corpus import ColdKeeper
from planner.service import ProcessTree, Service


@dataclass(frozen=True)
class SLO:
    p99_ms: float = 500.0
    max_error_rate: float = 0.01
    max_lateness_p99_ms: float = 100.0
    min_achieved_ratio: float = 0.95  # answered OK / offered


@dataclass
class Step:
    speedup: float
    offered_rps: float
    achieved_rps: float
    p50_ms: float
    p99_ms: float
    error_rate: float
    lateness_p99_ms: float
    requests: int
    failures: int
    planned: int
    sent: int
    unanswered: int
    wall_s: float
    service_cpu_cores: float | None     # mean cores busy in the service's processes
    service_busiest_process_cores: float | None  # the busiest single service process (one worker saturated?)
    other_cpu_cores: float              # cores busy in the rest of the machine (other load disturbs the step)
    driver_cpu_cores: float             # mean cores busy in the load driver's processes
    by_operation: dict[str, dict] = field(default_factory=dict)
    rejections: int = 0                 # answered 503 (the service's in-flight bound), part of the failures
    wrong_answers: int = 0              # accepted status, wrong content (load.checks), part of the failures
    wrong_answers_by_operation: dict[str, int] = field(default_factory=dict)
    folder: str = ""
    holds: bool = False
    broken: list[str] = field(default_factory=list)
    protocol: str = "dmp"
    # per call type (TD0.2, ITI-18 FindDocuments, ITI-41, ITI-67…): count, failures, p50/p99 ms, the driver's CPU
    # per call (µs) and the service's (µs, its fair-share attribution: load.service_metrics)
    calls: dict[str, dict] = field(default_factory=dict)
    # per interaction (consultation (xds) first visit…): count, failures, p50/p99 ms, the calls it is made of, and
    # the service's CPU per interaction (µs: its calls' CPU per call times how many it makes)
    interactions: dict[str, dict] = field(default_factory=dict)
    # the disk under the service's data directory over the step's busiest stretch (planner.disk): reads per
    # second, MB/s, share of the time busy; None when unknown (a --target service, no local block device)
    disk_read_iops: float | None = None
    disk_read_mb_per_s: float | None = None
    disk_busy_share: float | None = None
    service_read_mb_per_s: float | None = None  # what the service's processes had read from storage (cache misses)
    corpus: str = "hot"                 # the corpus regime the step ran in (planner.corpus)
    evictions: int = 0                  # passes of the cold keeper over the seeded corpus during the step

    def judge(self, slo: SLO) -> None:
        """Set ``holds`` and ``broken`` (the reasons, in words). A step with any wrong answer does not
        hold, whatever its error rate: an answer with another patient's document is no served read."""
        broken = []
        if self.wrong_answers:
            by_operation = ", ".join(f"{op} {n}" for op, n in sorted(self.wrong_answers_by_operation.items()))
            broken.append(f"{self.wrong_answers} wrong answers ({by_operation})")
        if self.p99_ms > slo.p99_ms:
            broken.append(f"p99 {self.p99_ms:.0f} ms > {slo.p99_ms:.0f} ms")
        if self.error_rate > slo.max_error_rate:
            broken.append(f"errors {self.error_rate:.2%} > {slo.max_error_rate:.2%}")
        if self.lateness_p99_ms > slo.max_lateness_p99_ms:
            broken.append(f"lateness p99 {self.lateness_p99_ms:.0f} ms > {slo.max_lateness_p99_ms:.0f} ms")
        if self.offered_rps and self.achieved_rps < slo.min_achieved_ratio * self.offered_rps:
            broken.append(f"achieved {self.achieved_rps:.1f}/s < {slo.min_achieved_ratio:.0%} of offered "
                          f"{self.offered_rps:.1f}/s")
        if self.sent < self.planned:
            broken.append(f"sent {self.sent} of {self.planned} planned")
        self.broken, self.holds = broken, not broken

    def as_dict(self) -> dict:
        return asdict(self)


_HTTP_METHODS = ("GET", "POST", "PUT", "DELETE")


def _locust_rows(path: Path) -> dict[str, dict]:
    """Locust's rows by name: the calls' (an HTTP method as type) and Aggregated; the interactions' rows apart."""
    with path.open() as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)
                if row.get("Type") in _HTTP_METHODS or row["Name"] == "Aggregated"}


def _number(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0


def cool_down(service: Service, idle_cores: float = 0.15, longest_s: float = 60.0) -> float:
    """Wait until the service is idle again (an overloaded step leaves work behind); returns the wait."""
    started = time.perf_counter()
    previous = service.cpu_seconds()
    while previous is not None and time.perf_counter() - started < longest_s:
        time.sleep(1.0)
        current = service.cpu_seconds()
        if current - previous < idle_cores:
            break
        previous = current
    return time.perf_counter() - started


def _metrics(service: Service) -> str | None:
    """The service's /metrics text (None when it cannot be read: the per-call CPU is then unknown)."""
    try:
        with urllib.request.urlopen(f"{service.url}/metrics", timeout=10) as answer:
            return answer.read().decode()
    except OSError:
        return None


def _per_call(report: dict, service_cpu: dict[str, dict]) -> tuple[dict, dict]:
    """The step's calls and interactions: the driver's figures (replay.json) with the service's CPU per call."""
    calls = {}
    for name, figures in report.get("calls", {}).items():
        service = service_cpu.get(name, {})
        calls[name] = {**figures, "service_cpu_us": service.get("cpu_us_per_call"),
                       "service_cpu_share": service.get("share")}
    interactions = {}
    for name, figures in report.get("interactions", {}).items():
        made = figures.get("calls_per_interaction", {})
        known = [calls.get(call, {}).get("service_cpu_us") for call in made]
        cpu = (sum(n * calls[call]["service_cpu_us"] for call, n in made.items())
               if made and all(c is not None for c in known) else None)
        interactions[name] = {**figures, "service_cpu_us": None if cpu is None else round(cpu, 1)}
    return calls, interactions


def run_step(service: Service, schedule: Path, folder: Path, speedup: float, seconds: float, run_tag: str,
             processes: int = 1, protocol: str = "dmp", cold_files: list[str] | None = None,
             window_s: float | None = None, corpus: str = "hot") -> Step:
    """Replay ``seconds`` of wall-clock time at ``speedup`` (the window looped if it is shorter), the
    professionals' interactions over ``protocol``'s calls (load.interactions). With ``cold_files`` (the seeded
    corpus's files) those are evicted from the page cache at the start and after each pass over the window
    (``window_s`` seconds of scenario time, :class:`planner.corpus.ColdKeeper`)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = locust_command(schedule, service.url, folder, speedup=speedup, key=service.key, processes=processes,
                             extra=("--replay-seconds", f"{seconds:g}", "--run-tag", run_tag,
                                    "--drain-seconds", f"{max(3.0, seconds / 2):g}"), protocol=protocol)
    metrics_before = _metrics(service)
    service_samples: list[tuple[float, float]] = []
    process_samples: list[tuple[float, dict[int, float]]] = []
    machine_samples: list[tuple[float, float]] = []
    driver_samples: list[tuple[float, float]] = []
    disk_samples: list[disk.DiskSample] = []
    service_reads: list[tuple[float, float]] = []
    device = disk.device_of(service.folder / "data") if service.process is not None else None
    keeper = ColdKeeper(cold_files, (window_s or seconds) / speedup) if cold_files else None
    started = time.perf_counter()
    with (folder / "locust.log").open("wb") as log, keeper or contextlib.nullcontext():
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        tree = ProcessTree(driver.pid)
        while driver.poll() is None:
            now = time.perf_counter()
            if (read := disk.sample(device)) is not None:
                disk_samples.append(read)
                service_reads.append((now, (service.read_bytes() or 0) / 1e6))
            driver_samples.append((now, tree.cpu_seconds()))  # sampled often: workers exit before the master
            machine_samples.append((now, _machine_busy_seconds()))
            service_cpu = service.cpu_seconds()
            if service_cpu is not None:
                service_samples.append((now, service_cpu))
                process_samples.append((now, service.cpu_by_process()))
            time.sleep(_SAMPLE_S)
    elapsed = time.perf_counter() - started
    metrics_after = _metrics(service)
    service_cpu = cpu_per_call_us(metrics_before, metrics_after) if metrics_before and metrics_after else {}
    report_path = folder / "replay.json"
    if not report_path.exists():
        tail = (folder / "locust.log").read_text(errors="replace")[-500:]
        raise RuntimeError(f"the replay at {speedup:g}x wrote no report (locust exited {driver.returncode}): {tail}")
    report = json.loads(report_path.read_text())
    locust_report.annotate(folder / "locust.html", report)
    locust_report.write_csv(report, folder / "locust_replay.csv")
    rows = _locust_rows(folder / "locust_stats.csv")
    total = dict(rows.get("Aggregated", {}))
    # Locust's Aggregated row holds the interactions too (a consultation is several calls): the SLO is on the
    # calls, which the driver measures apart (replay.json calls_aggregated); requests not sent count as failures
    calls = report.get("calls_aggregated") or {}
    not_sent = report.get("not_sent", 0)
    if calls.get("count"):
        total = {"Request Count": calls["count"] + not_sent, "Failure Count": calls["failures"] + not_sent,
                 "50%": calls["p50_ms"], "99%": calls["p99_ms"]}
    # requests still unanswered when the step's drain time ran out are failures too (Locust never saw them end)
    unanswered = report.get("unanswered", 0)
    requests = int(_number(total.get("Request Count"))) + unanswered
    failures = int(_number(total.get("Failure Count"))) + unanswered
    wall_s = max(report["wall_s"], 1e-9)
    # achieved: answered OK per second over the planned span, or over a longer one when answers came late
    span = max(wall_s, report["last_answer_s"])
    by_operation = {name: {"requests": int(_number(r["Request Count"])), "failures": int(_number(r["Failure Count"])),
                           "p50_ms": _number(r["50%"]), "p99_ms": _number(r["99%"]),
                           "mean_ms": _number(r["Average Response Time"])}
                    for name, r in rows.items() if name != "Aggregated" and r.get("Type") in _HTTP_METHODS}
    step_calls, step_interactions = _per_call(report, service_cpu)
    return Step(
        speedup=speedup, offered_rps=report["planned"] / wall_s, achieved_rps=report["succeeded"] / span,
        p50_ms=_number(total.get("50%")), p99_ms=_number(total.get("99%")),
        # the calls' error rate, or the interactions' when higher (one that fails at its first call skips the rest)
        error_rate=max(failures / requests if requests else 0.0,
                       (report.get("failed", 0) + report.get("unanswered", 0)) / max(report.get("sent", 0), 1)),
        lateness_p99_ms=report["lateness_p99_ms"],
        requests=requests, failures=failures, planned=report["planned"], sent=report["sent"], unanswered=unanswered,
        wall_s=wall_s, wrong_answers=report.get("wrong_answers", 0),
        wrong_answers_by_operation=report.get("wrong_answers_by_operation", {}),
        service_cpu_cores=_busiest_cores(service_samples, wall_s) if service_samples else None,
        service_busiest_process_cores=_busiest_process(process_samples, wall_s) if process_samples else None,
        other_cpu_cores=_other_cores(machine_samples, service_samples, driver_samples, wall_s),
        driver_cpu_cores=_busiest_cores(driver_samples, wall_s), by_operation=by_operation, folder=str(folder),
        protocol=protocol, calls=step_calls, interactions=step_interactions, corpus=corpus,
        evictions=keeper.evictions if keeper else 0, **_disk_figures(disk_samples, wall_s),
        service_read_mb_per_s=round(_busiest_cores(service_reads, wall_s), 2) if len(service_reads) > 1 else None)


def _disk_figures(samples: list[disk.DiskSample], span_s: float) -> dict:
    """The disk's reads per second, MB/s and busy share over the step's busiest stretch of reads."""
    if len(samples) < 2:
        return dict(disk.UNKNOWN)
    return {"disk_read_iops": round(_busiest_cores([(s.at, s.reads) for s in samples], span_s), 1),
            "disk_read_mb_per_s": round(_busiest_cores([(s.at, s.read_bytes / 1e6) for s in samples], span_s), 2),
            "disk_busy_share": round(min(_busiest_cores([(s.at, s.busy_ms / 1000) for s in samples], span_s), 1.0), 3)}


_SAMPLE_S = 0.25


def _machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _other_cores(machine: list[tuple[float, float]], service: list[tuple[float, float]],
                 driver: list[tuple[float, float]], span_s: float) -> float:
    """Cores busy outside the service and the driver, over the step's busiest stretch of the machine."""
    if len(machine) < 2:
        return 0.0
    service = service or [(t, 0.0) for t, _ in machine]
    rest = [(t, m - s - d) for (t, m), (_, s), (_, d) in zip(machine, service, driver)]
    return max(_busiest_cores(rest, span_s), 0.0)


def _busiest_process(samples: list[tuple[float, dict[int, float]]], span_s: float) -> float:
    pids = set().union(*(seen for _, seen in samples))
    return max((_busiest_cores([(t, seen.get(pid, 0.0)) for t, seen in samples], span_s) for pid in pids), default=0.0)


def _busiest_cores(samples: list[tuple[float, float]], span_s: float) -> float:
    """Mean cores busy over the busiest stretch as long as the replay (start-up and tail left out)."""
    if len(samples) < 2:
        return 0.0
    span = max(min(span_s, samples[-1][0] - samples[0][0]), _SAMPLE_S * 2)
    best, j = 0.0, 0
    for i in range(len(samples)):
        while j < len(samples) - 1 and samples[j][0] - samples[i][0] < span:
            j += 1
        if samples[j][0] - samples[i][0] >= span * 0.9:
            best = max(best, (samples[j][1] - samples[i][1]) / (samples[j][0] - samples[i][0]))
    return round(best, 3)
