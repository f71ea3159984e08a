"""How much each assumption moves the peak hour: the range of the peak, and the bars of a tornado chart.

The scenario is simulated again with its assumptions all low, all high, and each one alone at
its low and its high end (the others at the run's level). To keep that quick, those runs cover
only the week around the main run's peak hour (with the month before it that patients' reads
depend on): the peak of a variant is looked for in that week. The main run's own level is
taken from the main run itself, so ``peak_hour_range[level]`` is ``peak_hour``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from simulator.engine import Traffic, simulate
from simulator.scenario import LEVELS, Scenario

_SPAN_DAYS = 3  # the variants cover the peak day and this many days on each side


def peak_hour(traffic: Traffic) -> dict:
    """The busiest clock hour: {"requests_per_s", "deposits_per_s", "reads_per_s", "hour" (ISO start)}."""
    peak = traffic.peak_hour
    return {
        "requests_per_s": round(float(peak.operations) / 3600, 3),
        "deposits_per_s": round(float(peak.deposits) / 3600, 3),
        "reads_per_s": round(float(peak.reads) / 3600, 3),
        "hour": traffic.calendar.moment(peak.first_minute).isoformat(),
    }


@dataclass
class Sensitivity:
    """``levels``: low/central/high -> peak hour; ``bars``: one per assumption, widest first."""

    levels: dict[str, dict]
    bars: list[dict]  # {name, low, high, base: requests_per_s, swing: high - low}
    span: tuple[str, str]

    def as_dict(self) -> dict:
        return {"peak_hour_range": self.levels,
                "sensitivity": {"span": {"start": self.span[0], "end": self.span[1]}, "bars": self.bars}}


def _span(traffic: Traffic) -> tuple[dt.date, dt.date]:
    calendar = traffic.calendar
    day = dt.date.fromisoformat(peak_hour(traffic)["hour"][:10])
    return (max(calendar.start, day - dt.timedelta(days=_SPAN_DAYS)),
            min(calendar.end, day + dt.timedelta(days=_SPAN_DAYS)))


def analyse(scenario: Scenario, traffic: Traffic, progress: Callable[[int, int], None] = lambda done, total: None,
            ) -> Sensitivity:
    """Run the variants of ``scenario`` (whose main run is ``traffic``) and collect their peak hours."""
    start, end = _span(traffic)
    base_levels = dict(scenario.levels)
    chosen = scenario.level
    # the run's own level is the main run itself: not simulated again
    variants: list[tuple[str, dict[str, str]]] = [("all:" + level, level) for level in LEVELS if level != chosen]
    for name, assumption in scenario.assumptions.items():
        if assumption.low != assumption.high:
            variants += [(f"{name}:low", {name: "low"}), (f"{name}:high", {name: "high"})]
    variants.append(("base", base_levels))
    peaks: dict[str, dict] = {}
    for done, (key, levels) in enumerate(variants):
        variant = scenario.at_levels(levels).with_overrides(start=start, end=end)
        peaks[key] = peak_hour(simulate(variant))
        progress(done + 1, len(variants))
    result = {level: (peak_hour(traffic) if level == chosen else peaks["all:" + level]) for level in LEVELS}
    base = peaks["base"]["requests_per_s"]
    bars = [{"name": name, "low": peaks[f"{name}:low"]["requests_per_s"], "high": peaks[f"{name}:high"]["requests_per_s"],
             "base": base, "swing": round(peaks[f"{name}:high"]["requests_per_s"] - peaks[f"{name}:low"]["requests_per_s"], 3)}
            for name, assumption in scenario.assumptions.items() if assumption.low != assumption.high]
    bars.sort(key=lambda bar: abs(bar["swing"]), reverse=True)
    return Sensitivity(result, bars, (start.isoformat(), end.isoformat()))
