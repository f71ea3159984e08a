"""The outage's recovery surge replayed against the record service.

:func:`planner.outage.outage_drain` finds, at national scale, the busiest stretch of the traffic
that follows an outage's recovery (connectors sending their queues, people retrying, on top of
the day's own traffic). This module simulates the same outage at the plan's sampling scale,
seeds the corpus that stretch reads, and replays it at ``headroom / scale`` — the national surge
times the headroom the verdict asks for — as one more step measured like the others. Whether
the surge holds is then measured, not inferred from a fluid model.

The stretch is at most an hour of scenario time, and short enough to replay in about
``wall_s`` seconds (at least a minute of scenario time).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

from load.seed import seed
from planner import outage
from planner.footprint import STORAGE_OVERHEAD
from planner.service import Service
from planner.steps import SLO, cool_down, run_step
from simulator.run import run as simulate_run
from simulator.scenario import Scenario

WALL_S = 30.0       # seconds of wall-clock time the replay of the surge may take (about)
LONGEST_MINUTES = 60


def window_minutes(speedup: float, wall_s: float = WALL_S) -> int:
    """Minutes of scenario time replayed at ``speedup`` in about ``wall_s`` seconds: 1 to 60."""
    return max(1, min(LONGEST_MINUTES, int(wall_s * speedup / 60.0)))


def hopeless(drain: dict, multiple: float) -> str | None:
    """Why replaying the surge at ``multiple`` x its national rate would tell nothing new, or None.

    Nothing held (capacity 0), or the surge's mean rate over its window is above twice the
    capacity measured: the surge does not hold, and a replay would only flood the service."""
    capacity = drain["capacity_rps"]
    if not capacity:
        return ("the service does not hold the window's own traffic: the surge after an outage, above it, "
                "does not hold either")
    asked = drain["surge_window"]["national_rps"] * multiple
    if asked > 2 * capacity:
        return (f"the surge at {multiple:g}x its national rate asks {asked:,.0f} requests/s on average, over twice "
                f"the capacity measured ({capacity:,.0f}/s): it does not hold")
    return None


def _scenario(scenario: Scenario, drain: dict) -> Scenario:
    """The scenario (at its sampling scale) with the what-if's outage, its replay window the surge's."""
    start = dt.datetime.fromisoformat(drain["start"])
    surge = drain["surge_window"]
    disrupted = outage.with_outage(scenario, start, drain["outage_hours"], scale=scenario.scale)
    return disrupted.model_copy(update={"replay": disrupted.replay.model_copy(update={
        "start": dt.datetime.fromisoformat(surge["start"]), "minutes": surge["minutes"]})})


def replay_surge(scenario: Scenario, drain: dict, service: Service, out: Path, slo: SLO, speedup: float,
                 processes: int, run_tag: str, log: Callable[[str], None], disk_left: int | None = None,
                 protocol: str = "dmp") -> dict:
    """Replay ``drain["surge_window"]`` at ``speedup`` against ``service``; the step's figures and verdict.

    ``scenario``: as simulated for the plan (its scale is the sample's); ``out``: the plan's
    directory (the simulation, Locust's reports and the step go to out/recovery/). Returns the
    step as plan.json gives each step (:meth:`Step.as_dict`: speedup, offered_rps, achieved_rps,
    p99_ms, lateness_p99_ms, error_rate, wrong_answers, holds, broken…, folder relative to ``out``) and
    its ``window``; rates in requests per second at the replayed rate (the national surge times the
    headroom), latencies in ms. ``disk_left``: bytes the plan may still write (None: no
    limit known); a surge whose corpus and deposits would not fit is not replayed: {window, skipped}.
    """
    folder = out / "recovery"
    surge = drain["surge_window"]
    log(f"outage recovery: simulating the surge from {surge['start']} ({surge['minutes']} min) at scale "
        f"{scenario.scale:g} …")
    simulated = simulate_run(_scenario(scenario, drain), folder / "simulation", ranges=False, draw=False)
    simulation, window = simulated.directory, simulated.summary["replay_window"]
    need = round((window["corpus_bytes"] + window["deposited_bytes"]) * STORAGE_OVERHEAD)
    if disk_left is not None and need > disk_left:
        reason = (f"its corpus and deposits need {need / 1e9:,.1f} GB and {max(disk_left, 0) / 1e9:,.1f} GB of the "
                  "disk budget is left (raise --max-disk-gb or sample a smaller --scale)")
        log(f"outage recovery: not replayed: {reason}")
        return {"window": surge, "skipped": reason}
    seeded, _ = seed(simulation, service.url, service.key, log=log)
    if seeded.failures:
        log(f"warning: {sum(seeded.failures.values())} documents of the surge's corpus were refused while seeding")
    cool_down(service)
    seconds = surge["minutes"] * 60.0 / speedup
    log(f"outage recovery: replaying the surge at {speedup:g}x for {seconds:.1f} s …")
    step = run_step(service, simulation, folder / "replay", speedup, seconds, run_tag, processes, protocol)
    step.judge(slo)
    log(f"  offered {step.offered_rps:,.1f}/s, achieved {step.achieved_rps:,.1f}/s, p99 {step.p99_ms:.0f} ms, "
        f"errors {step.error_rate:.2%}, lateness p99 {step.lateness_p99_ms:.0f} ms"
        f" -> {'holds' if step.holds else 'breaks: ' + '; '.join(step.broken)}")
    return {**step.as_dict(), "window": surge, "folder": str(Path(step.folder).relative_to(out))}
