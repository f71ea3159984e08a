"""A capacity plan: how many times the scenario's traffic the record service holds, and what breaks first.

1. simulate the scenario (or reuse a result directory), 2. start the service (or use one given
by URL), 3. seed it with the corpus, 4. replay the window at increasing speed-ups: the first
step (the scenario as it is) also feeds a queueing model whose predicted knee guides the
search; steps grow until one breaks the SLO, then the gap is bisected, 5. write the plan.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from planner import outage, recovery, verdict
from planner.corpus import Regime, Seeded, corpus_files, main_regime, seed_regime
from planner.queueing import Model
from planner.service import Service
from planner.steps import SLO, Step, cool_down, run_step
from simulator.engine import simulate
from simulator.scenario import Scenario

CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class SearchLimits:
    step_seconds: float = 8.0
    max_steps: int = 7
    max_speedup: float = 200_000.0
    refine_ratio: float = 1.25   # stop bisecting when the bracket is this narrow
    processes: int = 1


def _model(held: list[Step], service: Service) -> Model | None:
    """The queueing model, fed with the steps that held so far (all below the knee, by definition).

    Service time: the median of their mean response times. CPU per request: the slope of the
    cores busy (service + driver) against the offered rate, which cancels what both use when idle;
    it needs two steps at rates at least 2x apart, and is left out (0) until then.
    """
    if not held:
        return None
    steps = sorted(held, key=lambda s: s.offered_rps)
    means = sorted(sum(op["mean_ms"] * op["requests"] for op in s.by_operation.values())
                   / max(sum(op["requests"] for op in s.by_operation.values()), 1) for s in steps)
    top = steps[-1]
    slope = 0.0
    measured = [s for s in steps if s.service_cpu_cores is not None]
    if len(measured) >= 2 and measured[-1].offered_rps >= 2 * measured[0].offered_rps:
        xs = [s.offered_rps for s in measured]
        ys = [s.service_cpu_cores + s.driver_cpu_cores for s in measured]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        variance = sum((x - mean_x) ** 2 for x in xs)
        slope = max(sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / variance, 0.0) if variance else 0.0
    base_p99_s = min(s.p99_ms for s in steps) / 1000
    if slope > 0:  # requests queue for the CPU: c = cores, service time = CPU seconds per request
        return Model(base_speedup=top.speedup, base_rps=max(top.offered_rps, 1e-9), service_s=slope,
                     base_p99_s=base_p99_s, servers=CORES, cpu_s_per_request=slope, cores=CORES)
    return Model(base_speedup=top.speedup, base_rps=max(top.offered_rps, 1e-9),
                 service_s=max(means[len(means) // 2] / 1000, 1e-5), base_p99_s=base_p99_s,
                 servers=service.workers if service.process else CORES, cpu_s_per_request=0.0, cores=CORES)


def _next_speedup(steps: list[Step], predicted: float, limits: SearchLimits) -> float | None:
    held = [s.speedup for s in steps if s.holds]
    broke = [s.speedup for s in steps if not s.holds]
    best = max(held, default=None)
    lowest_broken = min((b for b in broke if best is None or b > best), default=None)
    if best is None:  # even the scenario itself is too much: look below it
        return min(broke) / 4 if min(broke) > 1 / 64 else None
    if lowest_broken is None:
        if best >= limits.max_speedup:
            return None
        if math.isinf(predicted) or predicted <= best * 1.5:
            stride = 8.0 if math.isinf(predicted) else 1.6   # no estimate yet / close to (or past) the estimate
            return min(best * stride, limits.max_speedup)
        # head for just below the predicted knee, at most 32x further
        return min(max(best * 1.6, predicted * 0.8), best * 32, limits.max_speedup)
    if lowest_broken / best <= limits.refine_ratio:
        return None
    return math.sqrt(best * lowest_broken)


def _bottleneck(step: Step | None, service: Service, slo: SLO, limits: SearchLimits,
                highest_tried: float | None = None) -> dict:
    """What limits the service at the first step that broke the SLO, in words and as a tag."""
    if step is None:
        highest = highest_tried if highest_tried is not None else limits.max_speedup
        return {"kind": "none-found", "words": f"no step broke the SLO up to {highest:g}x, the highest tried: the "
                f"search stopped ({limits.max_steps} steps) before finding the limit, so the headroom is at least "
                "that; raise --max-steps to find it"}
    if step.wrong_answers:
        return _wrong_answers(step)
    service_cores = step.service_cpu_cores
    evidence = (f"service CPU {service_cores if service_cores is not None else 'unknown'} cores, "
                f"driver CPU {step.driver_cpu_cores:.2f} cores, p99 {step.p99_ms:.0f} ms, "
                f"lateness p99 {step.lateness_p99_ms:.0f} ms, errors {step.error_rate:.2%}")
    if step.disk_busy_share is not None:
        evidence += (f", disk busy {step.disk_busy_share:.0%} ({step.disk_read_iops:,.0f} reads/s, "
                     f"{step.disk_read_mb_per_s:,.1f} MB/s)")
    if step.other_cpu_cores >= 0.5:
        evidence += (f"; WARNING: other programs used {step.other_cpu_cores:.2f} cores of this machine during "
                     "the step, so the service had less than the whole machine")
    service_slow = step.p99_ms > slo.p99_ms or step.error_rate > slo.max_error_rate
    everything = (service_cores or 0.0) + step.driver_cpu_cores + step.other_cpu_cores
    database = " with its database" if service.database else ""
    if not service_slow:  # the service answered in time: what broke was the schedule
        if everything >= 0.85 * CORES and step.driver_cpu_cores < 0.85 * limits.processes:
            return {"kind": "machine-cpu", "words": f"this machine's CPU is saturated: the service{database} "
                    f"({service_cores} cores) leaves the load driver ({step.driver_cpu_cores:.2f} cores) too little "
                    f"CPU to keep the schedule; the service itself still answered within the SLO, so with the driver "
                    f"on another machine it would go further. ({evidence})"}
        if step.driver_cpu_cores >= 0.85 * limits.processes:
            return {"kind": "load-driver", "words": "the load driver is saturated (its processes are CPU-bound and "
                    "requests leave late): this measures the driver, not the service; add --processes or workers "
                    f"on another machine. ({evidence})"}
        return {"kind": "load-driver", "words": "requests left late though the service answered in time: the "
                f"driver could not keep the schedule (bursts, or CPU taken by the service on this machine). ({evidence})"}
    rejected = step.rejections
    if rejected:
        return {"kind": "service-admission", "words": f"the service sheds load (503 from its in-flight bound) "
                f"before latency grows: {rejected} rejections. ({evidence})"}
    if step.disk_busy_share is not None and step.disk_busy_share >= 0.85:
        return {"kind": "disk-reads", "words": f"the disk under the service's data is the queue: busy "
                f"{step.disk_busy_share:.0%} of the time, {step.disk_read_iops:,.0f} reads/s, "
                f"{step.disk_read_mb_per_s:,.1f} MB/s ({step.corpus} corpus: documents older than the window are "
                f"read from the disk). ({evidence})"}
    busiest = step.service_busiest_process_cores
    if service_cores is not None and service_cores >= 0.85 * min(service.workers, CORES):
        return {"kind": "service-cpu", "words": f"the service's CPU is saturated ({service_cores:.2f} cores busy "
                f"for {service.workers} workers on {CORES} cores). ({evidence})"}
    if busiest is not None and busiest >= 0.85:
        return {"kind": "service-cpu", "words": f"one service process is CPU-bound ({busiest:.2f} of a core): a "
                f"worker (Python runs one core per process) or the writer is the limit, the others are not "
                f"saturated ({service_cores:.2f} cores in all). ({evidence})"}
    if everything >= 0.85 * CORES:
        return {"kind": "machine-cpu", "words": f"this machine's CPU is saturated: the service{database} "
                f"({service_cores if service_cores is not None else 'unknown'} cores), the load driver "
                f"({step.driver_cpu_cores:.2f}) and other programs ({step.other_cpu_cores:.2f}) share its {CORES} "
                f"cores; with the driver on another machine the service would go further. ({evidence})"}
    # the calls by kind, whatever the protocol named them (FHIR's operations, XDS.b's transactions)
    writes = max((op for name, op in step.by_operation.items() if name in _WRITES),
                 key=lambda op: op.get("p99_ms", 0), default={})
    reads = [op for name, op in step.by_operation.items() if name in _READS or name.startswith("ITI-18")]
    read_p99 = max((op["p99_ms"] for op in reads), default=0.0)
    if writes and writes.get("p99_ms", 0) > 2 * max(read_p99, 1):
        what = ("SQLite's single writer and fsync" if service.kind == "sqlite"
                else "PostgreSQL commits (WAL fsync) and row locks" if service.kind == "postgresql"
                else "the write path (commit, fsync, locks)")
        return {"kind": "storage-commit", "words": f"deposits wait on storage: {what} (deposit p99 "
                f"{writes['p99_ms']:.0f} ms against reads {read_p99:.0f} ms, CPU not saturated). ({evidence})"}
    return {"kind": "service-latency", "words": f"the service's latency grows past the SLO without one resource "
            f"saturated: look at its event loop, connection handling and database locks. ({evidence})"}


_WRITES = ("deposit", "ITI-41")
_READS = ("search", "retrieve", "history", "ITI-43", "td02", "TD0.2")


def _wrong_answers(step: Step) -> dict:
    by_operation = ", ".join(f"{op} {n}" for op, n in sorted(step.wrong_answers_by_operation.items()))
    return {"kind": "wrong-answers", "words": f"the service gave wrong answers at {step.speedup:g}x: "
            f"{step.wrong_answers} answers with an accepted status did not hold what was asked ({by_operation}; "
            f"kinds in steps/{Path(step.folder).name}/locust_failures.csv): a wrong answer is not a served request, "
            "whatever the speed."}


def _rejections(step: Step) -> int:
    path = Path(step.folder) / "locust_failures.csv"
    if not path.exists():
        return 0
    with path.open() as handle:
        return sum(int(row["Occurrences"]) for row in csv.DictReader(handle) if row["Error"].startswith("503"))


def plan(result_dir: Path, out: Path, service: Service, slo: SLO, limits: SearchLimits,
         log: Callable[[str], None], headroom_required: float = 1.0, assume: str = "central",
         outage_hours: float | None = None, replay_recovery: bool = True, disk_budget: int | None = None,
         protocol: str = "dmp", compare: str | None = None, corpus: list[Regime] | None = None) -> dict:
    """Run the search against a started ``service`` and return the plan (also written to out/plan.json).

    ``headroom_required``: the multiple of the national traffic of the window the service must
    hold; ``assume``: the assumption level (low, central, high) the verdict uses;
    ``outage_hours``: the outage of the what-if (default: the scenario's own, else one hour);
    ``replay_recovery``: replay the outage's recovery surge against the service (else it is
    only computed, :mod:`planner.outage`); ``disk_budget``: bytes the plan may write (the
    recovery replay is skipped, and says so, when what is left cannot hold it); ``protocol``: the
    professionals' interface the verdict is about (load.interactions: dmp, xds, fhir); ``compare``:
    another protocol searched too, on the same service, for the side-by-side ("what does moving the
    professionals to PDSm4DMP change?"); ``corpus``: the corpus regimes searched (:mod:`planner.corpus`; default
    hot), the verdict about :func:`planner.corpus.main_regime`'s, each one's capacity in ``capacity_by_corpus``.
    """
    summary = json.loads((result_dir / "summary.json").read_text())
    regimes = corpus or [Regime("hot")]
    main = main_regime(regimes)
    window_s = summary.get("replay_window", {}).get("minutes", 60) * 60.0
    tag = str(int(time.time()))
    regime = seed_regime(main, result_dir, service, log)
    before_search = service.data_bytes()
    search = _search(result_dir, out, service, slo, limits, log, protocol, tag, regime, window_s)
    search_bytes = None if before_search is None else (service.data_bytes() or 0) - before_search
    steps, predictions, model, predicted, limiting = (search["steps"], search["predictions"], search["model"],
                                                      search["predicted"], search["limiting"])
    max_speedup, first_broken = search["max_speedup"], search["first_broken"]
    bottleneck = _bottleneck(first_broken, service, slo, limits, max((s.speedup for s in steps), default=None))
    deposits_per_year = summary["annualised_deposit_rate"] + summary["totals"]["deposit"].get("patient", 0) * (
        365.25 / summary["period"]["days"])
    window = summary.get("replay_window", {})
    mean_document = window.get("deposited_bytes", 0) / max(window.get("by_operation", {}).get("deposit", 0), 1)
    result = {
        "scenario": summary["scenario"],
        "scale": summary["scale"],
        "window": {"start": window.get("start"), "minutes": window.get("minutes"),
                   "requests_per_second": window.get("per_second")},
        "service": {"kind": service.kind, "url": service.url, "workers": service.workers if service.process else None},
        "machine_cores": CORES,
        "slo": asdict(slo),
        "steps": _step_rows(steps, out),
        "max_sustainable_speedup": max_speedup,
        "documents_per_year_sustained": round(deposits_per_year * max_speedup),
        "national_equivalent_speedup": round(max_speedup * summary["scale"], 4),
        "bottleneck": bottleneck["kind"],
        "bottleneck_explained": bottleneck["words"],
        "storage_bytes_per_year": round(deposits_per_year * mean_document),
        "storage_bytes_per_year_national": round(deposits_per_year * mean_document / summary["scale"]),
        "mean_document_bytes": round(mean_document),
        "predicted_knee_speedup": None if model is None or math.isinf(predicted) else round(predicted, 2),
        "predicted_limit": limiting,
        "model": asdict(model) if model else None,
        "model_history": predictions,
        # a service that answers wrong at any step (another patient's documents, other bytes) holds nothing
        "holds_scenario": any(s.holds and s.speedup >= 1 for s in steps) and not any(s.wrong_answers for s in steps),
        "wrong_answers": sum(s.wrong_answers for s in steps),
        "wrong_answers_by_operation": _wrong_by_operation(steps),
        "national_headroom": verdict.national_headroom(max_speedup, summary),
        "headroom_required": headroom_required,
        "assume": assume,
        "protocol": protocol,
        **_priced(steps, max_speedup),
    }
    result["holds"] = verdict.holds(result["national_headroom"], headroom_required, assume, result["wrong_answers"])
    simulated = _simulated_scenario(result_dir)
    surge_speedup = headroom_required / summary["scale"]  # the sample's surge at national rate x the headroom
    result["outage_drain"] = _outage_drain(simulated, summary, max_speedup, outage_hours, log,
                                           recovery.window_minutes(surge_speedup))
    if replay_recovery:
        used = service.data_bytes()
        left = None if disk_budget is None or used is None else disk_budget - used
        _replay_surge(result["outage_drain"], simulated, service, out, slo, limits, headroom_required,
                      summary["scale"], f"{tag}r", log, left, protocol)
    result["model_check"] = _model_check(result, first_broken)
    result["protocols"] = {protocol: _protocol_summary(result)}
    skip = _compare_skipped(compare, protocol, service, disk_budget, search_bytes)
    if skip:
        result["protocols"][compare] = {"skipped": skip}
        log(f"{compare}: not searched: {skip}")
    elif compare and compare != protocol:
        other = _search(result_dir, out / f"compare-{compare}", service, slo, limits, log, compare, f"{tag}c",
                        regime, window_s)
        other_steps = _step_rows(other["steps"], out)
        headroom = verdict.national_headroom(other["max_speedup"], summary)
        result["protocols"][compare] = {
            "max_sustainable_speedup": other["max_speedup"], "national_headroom": headroom,
            "holds": verdict.holds(headroom, headroom_required, assume, sum(s.wrong_answers for s in other["steps"])),
            **_priced(other["steps"], other["max_speedup"]), "steps": other_steps}
    if simulated is not None:  # the scenario's calendar year, not its period's days x 365
        yearly = _year_deposits(simulated)
        result["documents_per_year_national"] = round(yearly / summary["scale"])
        result["documents_per_year_sustained"] = round(yearly * max_speedup)
        result["storage_bytes_per_year"] = round(yearly * mean_document)
        result["storage_bytes_per_year_national"] = round(yearly * mean_document / summary["scale"])
    result["corpus"] = regime.figures()
    by_corpus = [_corpus_capacity(regime, search, summary, bottleneck["kind"])]
    for other_regime in (r for r in regimes if r is not main):
        seeded = seed_regime(other_regime, result_dir, service, log, regime)
        other = _search(result_dir, out / f"corpus-{other_regime.name}", service, slo, limits, log, protocol,
                        f"{tag}{other_regime.name}", seeded, window_s)
        limit = _bottleneck(other["first_broken"], service, slo, limits, max((s.speedup for s in other["steps"]),
                                                                             default=None))["kind"]
        by_corpus.append({**_corpus_capacity(seeded, other, summary, limit), "steps": _step_rows(other["steps"], out)})
    result["capacity_by_corpus"] = by_corpus
    result["storage"] = _storage(summary, regime, search)
    result["storage"]["database"] = _database_size(service, result["storage"]["by_year"])
    disturbed = [s.speedup for s in steps if s.other_cpu_cores >= 0.5]
    result["disturbed_steps"] = disturbed
    result["verdict"] = _verdict(result, summary) + (
        f" Caution: other programs used this machine's CPU during the steps at {', '.join(f'{x:g}x' for x in disturbed)};"
        " run again on a quiet machine for firm figures." if disturbed else "")
    return result


def _search(result_dir: Path, out: Path, service: Service, slo: SLO, limits: SearchLimits, log: Callable[[str], None],
            protocol: str, tag: str, corpus: Seeded | None = None, window_s: float = 3600.0) -> dict:
    """Steps of rising speed-up until the SLO breaks, the professionals over ``protocol``, against the seeded
    ``corpus`` in its regime: the steps, the model's predictions, the highest speed-up held and the first broken
    step above it."""
    corpus = corpus or Seeded(Regime("hot"), 0, 0, [])
    steps: list[Step] = []
    predictions: list[dict] = []
    model: Model | None = None
    predicted, limiting = math.inf, "unknown"
    speedup: float | None = 1.0
    while speedup is not None and len(steps) < limits.max_steps:
        folder = out / "steps" / f"{len(steps) + 1:02d}-{speedup:g}x"
        cool_down(service)
        log(f"step {len(steps) + 1} ({protocol}, {corpus.regime.name} corpus): {speedup:g}x for "
            f"{limits.step_seconds:g} s …")
        if not corpus.regime.evict:
            corpus.warm()  # a hot corpus is cached, even after another regime's search evicted it
        step = run_step(service, result_dir, folder, speedup, limits.step_seconds, f"{tag}{len(steps) + 1}",
                        limits.processes, protocol, cold_files=corpus.files if corpus.regime.evict else None,
                        window_s=window_s, corpus=corpus.regime.name)
        step.judge(slo)
        step.rejections = _rejections(step)
        steps.append(step)
        log(f"  offered {step.offered_rps:,.1f}/s, achieved {step.achieved_rps:,.1f}/s, p50 {step.p50_ms:.0f} ms, "
            f"p99 {step.p99_ms:.0f} ms, errors {step.error_rate:.2%} ({step.rejections} rejected with 503), "
            f"lateness p99 {step.lateness_p99_ms:.0f} ms"
            f" -> {'holds' if step.holds else 'breaks: ' + '; '.join(step.broken)}")
        if step.holds and not any(not s.holds and s.speedup > step.speedup for s in steps):
            model = _model([s for s in steps if s.holds], service)
            predicted, limiting = model.knee(slo.p99_ms, slo.max_lateness_p99_ms)
            predictions.append({"after_step": len(steps), "predicted_knee_speedup": round(predicted, 2),
                                "limit": limiting})
            log(f"  model: knee predicted at {predicted:,.0f}x ({limiting})")
        speedup = _next_speedup(steps, predicted, limits)
        if step.wrong_answers and not any(s.holds for s in steps):
            log("  wrong answers at the lowest rate tried: no capacity to search for, the search stops")
            speedup = None

    held = [s for s in steps if s.holds]
    max_speedup = max((s.speedup for s in held), default=0.0)
    first_broken = min((s for s in steps if not s.holds and s.speedup > max_speedup), key=lambda s: s.speedup,
                       default=None)
    return {"steps": steps, "predictions": predictions, "model": model, "predicted": predicted, "limiting": limiting,
            "max_speedup": max_speedup, "first_broken": first_broken}


_RETRIEVES = ("ITI-43", "ITI-68", "retrieve")


def _retrieve_calls(step: Step) -> dict[str, dict]:
    return {name: call for name, call in step.calls.items() if any(word in name for word in _RETRIEVES)}


def _step_rows(steps: list[Step], out: Path) -> list[dict]:
    """plan.json's rows of ``steps``, their folders relative to the plan directory."""
    return [{**s.as_dict(), "folder": str(Path(s.folder).relative_to(out))} for s in steps]


def _measured_step(steps: list[Step], max_speedup: float) -> Step | None:
    """The highest step held, else the lowest tried: where a search's figures are read."""
    held = [s for s in steps if s.holds and s.speedup == max_speedup]
    return held[0] if held else min(steps, key=lambda s: s.speedup, default=None)


def _retrieves_per_second(step: Step) -> float:
    return sum(c.get("count", 0) for c in _retrieve_calls(step).values()) / step.wall_s


def _corpus_capacity(corpus: Seeded, search: dict, summary: dict, bottleneck: str) -> dict:
    """One entry of ``capacity_by_corpus``: the regime, its corpus, the capacity found, and at the step that
    measured it the retrieves' p99 (ms) and the disk's reads (IOPS, MB/s, busy share)."""
    step = _measured_step(search["steps"], search["max_speedup"])
    retrieves = _retrieve_calls(step) if step else {}
    return {"regime": corpus.regime.name, "documents": corpus.documents, "bytes": corpus.bytes,
            "max_sustainable_speedup": search["max_speedup"],
            "national_headroom": verdict.national_headroom(search["max_speedup"], summary)["central"],
            "measured_at_speedup": step.speedup if step else None,
            "retrieve_p99_ms": max((c.get("p99_ms", 0.0) for c in retrieves.values()), default=None),
            "retrieves_per_second": round(_retrieves_per_second(step), 2) if step else None,
            "disk_read_iops": step.disk_read_iops if step else None,
            "disk_read_mb_per_s": step.disk_read_mb_per_s if step else None,
            "disk_busy_share": step.disk_busy_share if step else None,
            "service_read_mb_per_s": step.service_read_mb_per_s if step else None,
            "bottleneck": bottleneck}


def _storage(summary: dict, corpus: Seeded, search: dict) -> dict:
    """Storage for planners: the national record at the end of each year (the simulator's history, cumulative
    by sector), and the disk reads the national window needs in ``corpus``'s regime: the reads per retrieve
    measured at the step that held most (the disk's counters, the service's share of them / retrieves) times the
    national retrieves per second."""
    window = summary.get("replay_window", {})
    national_retrieves = (window.get("by_operation", {}).get("retrieve", 0) / max(window.get("minutes", 60) * 60, 1)
                          / summary["scale"])
    step = _measured_step(search["steps"], search["max_speedup"])
    rate = _retrieves_per_second(step) if step else 0.0
    need = {"regime": corpus.regime.name, "national_retrieves_per_second": round(national_retrieves, 1),
            "disk_reads_per_retrieve": None, "disk_mb_per_retrieve": None,
            "national_disk_read_iops": None, "national_disk_read_mb_per_s": None}
    if step is not None and rate > 0 and step.disk_read_iops is not None:
        # the device's reads include other programs': the service's share of the bytes read apportions them
        share = 1.0
        if step.service_read_mb_per_s is not None and step.disk_read_mb_per_s:
            share = min(step.service_read_mb_per_s / step.disk_read_mb_per_s, 1.0)
        per_read, per_mb = step.disk_read_iops * share / rate, step.disk_read_mb_per_s * share / rate
        need.update(disk_reads_per_retrieve=round(per_read, 2), disk_mb_per_retrieve=round(per_mb, 4),
                    national_disk_read_iops=round(per_read * national_retrieves),
                    national_disk_read_mb_per_s=round(per_mb * national_retrieves, 1))
    return {"by_year": summary.get("storage_by_year", []), "window_disk_reads": need}


def _database_size(service: Service, by_year: list[dict]) -> dict | None:
    """The database's bytes per document stored (its size over the document files, after every step's
    deposits) and, at that rate, the national record's database at the end of each year: what must stay in
    memory for its index to stay hot (the cold regime evicts documents, not the database)."""
    size, files = service.database_bytes(), corpus_files(service.folder / "data") if service.process else []
    if not size or not files:
        return None
    per_document = size / len(files)
    return {"bytes": size, "documents": len(files), "bytes_per_document": round(per_document),
            "national_bytes_by_year": {str(y["year"]): round(per_document * y["documents"]) for y in by_year}}


def _priced(steps: list[Step], max_speedup: float) -> dict:
    """Per interaction and per call type, from the highest step held (else the lowest tried): rate (/s), latency
    p50/p99 (ms), failures, and the service's and the driver's CPU per call (µs)."""
    step = _measured_step(steps, max_speedup)
    if step is None:
        return {"measured_at_speedup": None, "interactions": {}, "calls": {}}

    def rated(table: dict) -> dict:
        return {name: {**figures, "per_second": round(figures["count"] / step.wall_s, 3)} for name, figures in table.items()}
    return {"measured_at_speedup": step.speedup, "interactions": rated(step.interactions), "calls": rated(step.calls)}


def _compare_skipped(compare: str | None, protocol: str, service: Service, disk_budget: int | None,
                     search_bytes: int | None) -> str | None:
    """Why the side-by-side search cannot run within the disk budget, or None. Its steps deposit about what the
    first search's did (the same window at similar speed-ups), taken with a 50 % margin."""
    if not compare or compare == protocol or disk_budget is None or search_bytes is None:
        return None
    used = service.data_bytes()
    if used is None:
        return None
    need = 1.5 * max(search_bytes, 0)
    if need <= disk_budget - used:
        return None
    return (f"its steps may deposit {need / 1e9:,.1f} GB and {max(disk_budget - used, 0) / 1e9:,.1f} GB of the disk "
            "budget is left (raise --max-disk-gb, or plan it alone with --protocol)")


def _protocol_summary(result: dict) -> dict:
    return {"max_sustainable_speedup": result["max_sustainable_speedup"], "national_headroom": result["national_headroom"],
            "holds": result["holds"], "measured_at_speedup": result["measured_at_speedup"],
            "interactions": result["interactions"], "calls": result["calls"]}


def _model_check(plan_: dict, first_broken: Step | None) -> dict:
    """The queueing model's knee against the measured one, and why they differ when by more than 25 %."""
    predicted, measured = plan_["predicted_knee_speedup"], plan_["max_sustainable_speedup"]
    if first_broken is not None and measured:
        measured = math.sqrt(measured * first_broken.speedup)  # the knee lies between the last held and first broken
    if not predicted or not measured:
        return {"predicted": predicted, "measured": measured or None, "error": None, "note": "not enough steps"}
    error = predicted / measured - 1
    note = ""
    if abs(error) > 0.25:
        reasons = {
            "machine-cpu": "the driver and the service share this machine's cores, and the driver's share grows "
                           "with the load: the model, fed with the CPU per request at low load, misses that",
            "load-driver": "the load driver, not the service, ran out first: the model describes the service",
            "storage-commit": "deposits wait on storage commits, which the CPU model does not see",
            "service-admission": "the service sheds load (503) before its CPU saturates",
            "wrong-answers": "wrong answers end the search whatever the load",
        }
        note = (f"the model is off by more than 25 %: "
                + reasons.get(plan_["bottleneck"], "latency grew for another reason than the CPU queue the model "
                                                   "assumes (locks, the event loop, the database)"))
    return {"predicted": predicted, "measured": round(measured, 2), "error": round(error, 3), "note": note}


def _simulated_scenario(result_dir: Path) -> Scenario | None:
    """The scenario exactly as the simulation ran it (scenario.json), or None for an older result directory."""
    path = result_dir / "scenario.json"
    return Scenario.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else None


def _year_deposits(scenario: Scenario) -> float:
    """Deposits (professional and patient) of the scenario's calendar year at its scale."""
    year = scenario.period.start.year
    whole = outage.without_outages(scenario).with_overrides(start=dt.date(year, 1, 1), end=dt.date(year, 12, 31))
    return float(simulate(whole).counts[0].sum())


def _replay_surge(drain: dict, scenario: Scenario | None, service: Service, out: Path, slo: SLO,
                  limits: SearchLimits, multiple: float, scale: float, tag: str, log: Callable[[str], None],
                  disk_left: int | None, protocol: str = "dmp") -> None:
    """Replay the recovery surge at ``multiple`` x its national rate (:mod:`planner.recovery`) into
    ``drain["recovery_replay"]``; its verdict becomes ``surge_holds`` (the fluid model's stays as
    ``surge_holds_computed``)."""
    if scenario is None or "surge_window" not in drain:
        return
    drain["surge_holds_computed"] = drain["surge_holds"]
    reason = recovery.hopeless(drain, multiple)
    if reason:
        drain["recovery_replay"], drain["surge_holds"] = {"skipped": reason}, False
        return
    replayed = recovery.replay_surge(scenario, drain, service, out, slo, multiple / scale, limits.processes, tag, log,
                                     disk_left, protocol=protocol)
    drain["recovery_replay"] = replayed
    if "holds" in replayed:
        drain["surge_holds"] = replayed["holds"]


def _outage_drain(scenario: Scenario | None, summary: dict, max_speedup: float, hours: float | None,
                  log: Callable[[str], None], window_minutes: int = 10) -> dict:
    """The outage what-if at the measured capacity (see :mod:`planner.outage`)."""
    if scenario is None:
        return {"outage_hours": hours, "error": "no scenario.json in the simulation directory: simulate it again"}
    hours = hours or outage.scenario_outage_hours(scenario) or outage.DEFAULT_HOURS
    window = summary["replay_window"]
    capacity = max_speedup * window["per_second"]  # requests/s the service took: the same in national terms
    log(f"outage what-if: {hours:g} h at {window['start']} against {capacity:,.0f} national requests/s …")
    return outage.outage_drain(scenario, dt.datetime.fromisoformat(window["start"]), hours, capacity, window_minutes)


def _wrong_by_operation(steps: list[Step]) -> dict[str, int]:
    total: dict[str, int] = {}
    for step in steps:
        for operation, count in step.wrong_answers_by_operation.items():
            total[operation] = total.get(operation, 0) + count
    return dict(sorted(total.items()))


def _verdict(plan_: dict, summary: dict) -> str:
    """The banner (about the nation), then what was measured and what breaks first."""
    speedup = plan_["max_sustainable_speedup"]
    window = plan_["window"]
    where = f"the {window['minutes']}-minute window of {plan_['scenario']} starting {window['start']}"
    head = verdict.banner(plan_) + "."
    if plan_["wrong_answers"]:
        return f"{head} {_wrong_verdict(plan_, where)}"
    sample = f"scale {plan_['scale']:g}: a 1/{1 / plan_['scale']:,.0f} sample of the nation" if plan_["scale"] < 1 else \
        f"scale {plan_['scale']:g}"
    if not speedup:
        return (f"{head} Even {where} at its own rate ({sample}) breaks the SLO. "
                f"First limit: {plan_['bottleneck_explained']}")
    shown = f"{speedup:,.0f}" if speedup >= 100 else f"{speedup:.3g}"
    corpus = plan_.get("corpus")
    against = (f" against a {corpus['regime']} corpus ({corpus['documents']:,} documents, {corpus['bytes'] / 1e9:,.2f} GB)"
               if corpus else "")
    return (f"{head} Measured: the service holds {shown}x {where} ({sample}){against}, "
            f"{plan_['national_equivalent_speedup']:.3g}x its national traffic. "
            f"First limit beyond that: {plan_['bottleneck_explained']}")


def _wrong_verdict(plan_: dict, where: str) -> str:
    """The verdict of a plan with wrong answers: it does not hold; where they came, and what else limits it."""
    at = [f"{step['speedup']:g}x ({step['wrong_answers']})" for step in plan_["steps"] if step["wrong_answers"]]
    by_operation = ", ".join(f"{op} {n}" for op, n in plan_["wrong_answers_by_operation"].items())
    words = [f"The service does NOT hold {where}: it gave {plan_['wrong_answers']} wrong answers ({by_operation}) "
             f"in the steps at {', '.join(at)}; an answer with an accepted status but the wrong content (another "
             "patient's documents, other bytes, no location) is not a served request."]
    if plan_["max_sustainable_speedup"]:
        words.append(f"The steps without any kept the SLO up to {plan_['max_sustainable_speedup']:,.3g}x.")
    if plan_["bottleneck"] != "wrong-answers":
        words.append(f"First limit beyond that: {plan_['bottleneck_explained']}")
    return " ".join(words)
