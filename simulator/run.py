"""One simulation run from a scenario to its result directory, written all or nothing.

Files are written through :func:`segur.staging.staged_directory`, so a run that fails (or is
interrupted) leaves no half-written result behind.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from segur.staging import staged_directory
from simulator import outputs, plots, sensitivity
from simulator.engine import Traffic, simulate
from simulator.scenario import Scenario
from simulator.schedule import ReplayPlan, build_replay, busiest_window, fixed_window

STAGES = ("professional deposits", "strikes and outages", "patients", "professional consultations",
          "assumption ranges", "replay schedule", "writing files", "plots")


@dataclass
class RunResult:
    directory: Path
    traffic: Traffic
    plan: ReplayPlan | None
    summary: dict
    timings: dict[str, float]


def default_directory(scenario: Scenario, results: Path = Path("results")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return results / f"{scenario.name}-{stamp}"


def _bucket(choice: str, days: int) -> str:
    if choice == "auto":
        return "minute" if days <= 31 else "hour"
    return choice


def _timed(function: Callable, *args) -> tuple[object, float]:
    start = time.perf_counter()
    return function(*args), time.perf_counter() - start


def run(scenario: Scenario, directory: Path, *, bucket: str = "auto", schedule: bool = True, draw: bool = True,
        ranges: bool = True, progress: Callable[[str], None] = lambda stage: None) -> RunResult:
    """Simulate ``scenario`` and write every output into ``directory`` (created; must not hold files).

    ``ranges``: also run the assumption variants (:mod:`simulator.sensitivity`) for
    ``peak_hour_range`` and sensitivity.png.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    with staged_directory(directory) as staging:
        traffic = simulate(scenario, progress)
        timings["simulate_s"] = time.perf_counter() - clock
        found = None
        if ranges:
            progress("assumption ranges")
            step = time.perf_counter()
            found = sensitivity.analyse(scenario, traffic).as_dict()
            timings["ranges_s"] = time.perf_counter() - step

        # counts.parquet is the largest file: written on the second core while the schedule is built
        with ThreadPoolExecutor(max_workers=1) as background:
            counts_written = background.submit(_timed, outputs.write_counts_parquet, traffic,
                                               staging / "counts.parquet", _bucket(bucket, traffic.calendar.days))
            plan, corpus_written = None, None
            if schedule:
                progress("replay schedule")
                step = time.perf_counter()
                replay = scenario.replay
                window = (fixed_window(traffic, replay.start, replay.minutes) if replay.start
                          else busiest_window(traffic, replay.minutes))
                plan = build_replay(traffic, window)
                timings["schedule_build_s"] = time.perf_counter() - step

            progress("writing files")
            files = {}
            outputs.write_monthly_csv(traffic, staging / "monthly.csv")
            if plan is not None:
                step = time.perf_counter()
                table = outputs.schedule_table(plan)
                outputs.write_parquet(table, staging / "schedule.parquet")
                files["schedule.parquet"] = table.num_rows
                timings["schedule_write_s"] = time.perf_counter() - step
                step = time.perf_counter()
                corpus_written = outputs.write_corpus(plan, staging / "corpus.parquet")
                files["corpus.parquet"] = corpus_written["rows"]
                timings["corpus_write_s"] = time.perf_counter() - step
            files["counts.parquet"], timings["counts_write_s"] = counts_written.result()
        summary = outputs.summary(traffic, plan, files, corpus_written)
        summary["peak_hour_range"] = found["peak_hour_range"] if found else {
            level: sensitivity.peak_hour(traffic) for level in ("low", "central", "high")}
        if found:
            summary["sensitivity"] = found["sensitivity"]

        if draw:
            progress("plots")
            step = time.perf_counter()
            summary["plots"] = plots.draw_all(traffic, plan, staging, found)
            timings["plots_s"] = time.perf_counter() - step
        summary["timings_s"] = {name: round(value, 3) for name, value in timings.items()}
        outputs.write_summary(summary, staging / "summary.json")
        # the scenario exactly as it ran (resolved, typed): what a planner re-simulates from
        (staging / "scenario.json").write_text(scenario.model_dump_json(indent=1), encoding="utf-8")
    return RunResult(directory, traffic, plan, summary, timings)
