"""`segur plan`: one command from a scenario to a capacity plan."""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import sys
from pathlib import Path

import click

from load.interactions import PROTOCOLS

from planner import corpus, footprint, report
from planner.plan import SearchLimits, plan
from planner.service import Service
from planner.steps import SLO
from segur.errors import InputError
from segur.staging import staged_directory
from simulator.run import run as simulate_run
from simulator.scenario import LEVELS, load_scenario


def _log(line: str) -> None:
    click.echo(line, err=True)


def _terminated(signum: int, frame) -> None:
    """SIGTERM (a scheduler's stop, `kill`) unwinds as Ctrl-C does: the service started here is stopped and the
    half-written plan directory, gigabytes of documents with it, is removed. Exit 128 + the signal."""
    raise SystemExit(128 + signum)


def _compared(protocol: str) -> str | None:
    """The protocol searched beside ``protocol``: the same traffic with the professionals on the other interface
    (none for xds, which replays the professionals alone: no FHIR counterpart replays the same rows)."""
    return {"dmp": "fhir", "fhir": "dmp"}.get(protocol)


@click.command(name="plan")
@click.argument("scenario", type=click.Path(exists=True, path_type=Path))
@click.option("--target", metavar="URL", help="A record service already running (default: start one here).")
@click.option("--db", metavar="URL", help="Start the service on this database (postgresql://…; default: embedded SQLite).")
@click.option("--slo-p99-ms", type=click.FloatRange(min=1), default=500.0, show_default=True,
              help="Highest acceptable p99 latency.")
@click.option("--max-error-rate", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="Highest acceptable share of failed requests.")
@click.option("--max-lateness-ms", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="Highest acceptable p99 lateness of the driver (beyond it the driver, not the service, is measured).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Plan directory (default: results/plan-<scenario>-<timestamp>/).")
@click.option("--step-seconds", type=click.FloatRange(min=1), default=8.0, show_default=True,
              help="Wall-clock length of each step (the window is looped when shorter).")
@click.option("--max-steps", type=click.IntRange(2, 50), default=7, show_default=True, help="Most steps in the search.")
@click.option("--processes", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Load-driver processes (Locust workers).")
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Worker processes of the service started here.")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
              help="Token signing key of a --target service (default: .segur/signing.key).")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True, max=4),
              help="Sampling scale of the simulated scenario (default: the scenario's own).")
@click.option("--headroom", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="The multiple of the national traffic of the window the service must hold for the plan to hold.")
@click.option("--assume", type=click.Choice(LEVELS), default="central", show_default=True,
              help="The assumption level of the traffic the verdict uses (low: least traffic, high: most).")
@click.option("--max-disk-gb", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Most disk the plan may use (corpus and the steps' deposits; never more than half the free disk). "
                   "A scenario whose plan would need more is sampled at a smaller scale, or refused with --scale.")
@click.option("--outage-hours", type=click.FloatRange(min=0, min_open=True, max=14 * 24),
              help="Outage what-if: how long the backlog of an outage of this many hours takes to drain at the "
                   "measured capacity (default: the scenario's outage, else 1 h).")
@click.option("--replay-recovery/--no-replay-recovery", default=True, show_default=True,
              help="Replay the busiest stretch of the outage's recovery surge against the service at the national "
                   "rate x --headroom (about 30 s); without it the surge is only compared with the capacity.")
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default="dmp", show_default=True,
              help="The professionals' interface the verdict is about: dmp (IHE XDS.b with signed VIHF, patients over "
                   "FHIR: the platform's mix), xds (the XDS.b traffic alone), fhir (ANS PDSm4DMP).")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Also search the capacity with the professionals on the other interface (fhir for dmp, dmp for "
                   "fhir; none for xds), on the same service, side by side in plan.json and the report.")
@click.option("--corpus", "corpus_text", metavar="hot|cold|GB[,…]",
              help="The corpus the capacity is measured against: cold (default with a service started here: every "
                   "document older than the window is read from the disk, as in the national record, far larger "
                   "than RAM), hot (all in the page cache: only true while the record fits in RAM; the default with "
                   "--target), or a size in GB: a cold corpus that big really on disk, the record's history beside "
                   "what the window reads (past the RAM: really larger than memory). Several, comma-separated, are "
                   "each searched: plan.json's capacity_by_corpus; the verdict is about cold when it is among them, "
                   "else the first.")
def plan_command(scenario: Path, target: str | None, db: str | None, slo_p99_ms: float, max_error_rate: float,
                 max_lateness_ms: float, out: Path | None, step_seconds: float, max_steps: int, processes: int,
                 workers: int, key: Path | None, scale: float | None, headroom: float, assume: str,
                 max_disk_gb: float, outage_hours: float | None, replay_recovery: bool, protocol: str,
                 compare: bool, corpus_text: str | None) -> None:
    """Find how much of a scenario's traffic the record service holds, and what breaks first.

    SCENARIO is a scenario file (simulated first) or a `segur simulate` result directory.
    The plan replays the scenario's window at increasing speed-ups against the service
    (started here on SQLite by default, or PostgreSQL with --db, or --target URL), and writes
    plan.json, report.html, PNG plots and Locust's reports of every step. The verdict is about
    the nation: the service HOLDS when it keeps the SLO at --headroom times the national traffic
    of the window (speed-up x scale), at the --assume level of the traffic's assumptions.
    Before writing anything the plan works out its disk footprint: a national scenario is sampled at
    a scale that fits (--max-disk-gb), or refused when --scale was given.
    The capacity is measured against a cold corpus by default (--corpus): what the national record,
    far larger than RAM, reads from its disks.
    The professionals' consultations and deposits are sent as the calls of --protocol (XDS.b by
    default, as the platform receives them), and priced per interaction and per call type; with
    --compare the other interface is searched too, side by side.
    Exit code: 0 when it holds, 1 when it does not, 2 on bad input or a plan that cannot fit.

    \b
    Examples:
      segur plan scenarios/smoke.yaml
      segur plan scenarios/plan-2026.yaml --headroom 1.3 --assume high
      segur plan scenarios/plan-2026.yaml --protocol fhir --no-compare
      segur plan scenarios/smoke.yaml --corpus hot,cold
      segur plan scenarios/plan-2026.yaml --corpus 30GB --max-disk-gb 45
      segur plan scenarios/peak-day-2026.yaml --db postgresql://segur@127.0.0.1:5432/segur --slo-p99-ms 300
    """
    signal.signal(signal.SIGTERM, _terminated)
    if target and db:
        raise InputError("--target and --db exclude each other: --db starts a service here, --target uses one")
    regimes = corpus.parse(corpus_text or ("hot" if target else "cold"))
    corpus.refuse_remote_cold(regimes, remote=bool(target))
    extra_corpus = max((r.bytes or 0 for r in regimes), default=0)
    name = scenario.stem if scenario.is_file() else scenario.name
    out = out or Path("results") / f"plan-{name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    slo = SLO(p99_ms=slo_p99_ms, max_error_rate=max_error_rate, max_lateness_p99_ms=max_lateness_ms)
    limits = SearchLimits(step_seconds=step_seconds, max_steps=max_steps, processes=processes)
    loaded = None
    room = footprint.budget(out, max_disk_gb)  # free disk and memory, read once
    if extra_corpus * footprint.STORAGE_OVERHEAD > room.disk:
        raise InputError(f"--corpus {corpus_text}: a corpus of {extra_corpus / 1e9:,.0f} GB does not fit the "
                         f"{room.describe()}; raise --max-disk-gb (at most half the free disk)")
    if scenario.is_dir():
        if not (scenario / "summary.json").exists() or not (scenario / "schedule.parquet").exists():
            raise InputError(f"{scenario}: not a `segur simulate` result directory (no summary.json/schedule.parquet)")
    else:  # know what the plan needs before anything is written
        loaded, needs = footprint.choose(load_scenario(scenario).with_overrides(scale=scale), scale is not None,
                                         max_steps, step_seconds, room, _log, replay_recovery, extra_corpus)
        _log(f"plan footprint: {needs.describe()}")
    with staged_directory(out) as staging:
        if loaded is None:
            simulation = scenario
        else:
            _log(f"simulating {loaded.name} …")
            simulation = simulate_run(loaded, staging / "simulation").directory
        signing_key = key or (Path(".segur/signing.key") if target else staging / "signing.key")
        with Service(staging / "service", signing_key, url=target, db=db, workers=workers) as service:
            _log(f"record service: {service.kind} at {service.url}")
            result = plan(simulation, staging, service, slo, limits, _log, headroom_required=headroom, assume=assume,
                          outage_hours=outage_hours, replay_recovery=replay_recovery,
                          disk_budget=room.disk, protocol=protocol,
                          compare=_compared(protocol) if compare else None, corpus=regimes)
        if service.process is not None:  # the throw-away service's documents: gigabytes nobody reads again
            shutil.rmtree(staging / "service" / "data", ignore_errors=True)
        report.write(result, staging)
    _log(result["verdict"])
    click.echo(str(out))
    sys.exit(0 if result["holds"] else 1)
