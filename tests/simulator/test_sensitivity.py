"""The peak hour's range across the assumptions, and the tornado's bars: each one a run of its own."""

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from segur.cli import main
from simulator.engine import simulate
from simulator.scenario import LEVELS, load_scenario
from simulator.sensitivity import analyse, peak_hour

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
PEAK_KEYS = {"requests_per_s", "deposits_per_s", "reads_per_s", "hour"}


@pytest.fixture(scope="module")
def peak_day():
    """peak-day-2026 at national scale (one day: about a second for every variant)."""
    scenario = load_scenario(SCENARIOS / "peak-day-2026.yaml")
    traffic = simulate(scenario)
    return scenario, traffic, analyse(scenario, traffic)


def test_the_range_is_ordered(peak_day):
    scenario, traffic, result = peak_day
    assert set(result.levels) == set(LEVELS)
    for level in LEVELS:
        assert set(result.levels[level]) == PEAK_KEYS
    low, central, high = (result.levels[level]["requests_per_s"] for level in LEVELS)
    assert low <= central <= high and low < high
    assert result.levels["central"] == peak_hour(traffic)          # the run's own level is the run itself
    for level in LEVELS:                                            # requests = deposits + reads + the rest
        peak = result.levels[level]
        assert peak["deposits_per_s"] + peak["reads_per_s"] <= peak["requests_per_s"] + 1e-3


def test_the_all_low_and_all_high_ends_are_runs_of_their_own(peak_day):
    scenario, _, result = peak_day
    start, end = (dt.date.fromisoformat(day) for day in result.span)
    for level in ("low", "high"):
        variant = load_scenario(SCENARIOS / "peak-day-2026.yaml", level).with_overrides(start=start, end=end)
        assert peak_hour(simulate(variant)) == result.levels[level]


def test_one_bar_per_assumption_that_moves_widest_first(peak_day):
    scenario, traffic, result = peak_day
    moving = {name for name, a in scenario.assumptions.items() if a.low != a.high}
    assert {bar["name"] for bar in result.bars} == moving and len(result.bars) == len(moving)
    swings = [abs(bar["swing"]) for bar in result.bars]
    assert swings == sorted(swings, reverse=True) and swings[0] > 0
    base = peak_hour(traffic)["requests_per_s"]
    for bar in result.bars:
        assert bar["base"] == base
        assert bar["swing"] == pytest.approx(bar["high"] - bar["low"], abs=1e-3)
        # low / high are the ends with the least / the most traffic at the peak
        assert bar["low"] <= bar["high"] + 0.01 * base, bar
    assert "flu_amplitude" in {bar["name"] for bar in result.bars[:3]}       # the flu wave is the peak day's main doubt


@pytest.mark.parametrize("rank", [0, 3])
def test_a_bar_is_the_peak_of_the_scenario_with_that_one_assumption_at_its_ends(peak_day, rank):
    scenario, _, result = peak_day
    bar = result.bars[rank]
    start, end = (dt.date.fromisoformat(day) for day in result.span)
    for level in ("low", "high"):
        variant = scenario.at_levels({bar["name"]: level}).with_overrides(start=start, end=end)
        assert variant.levels[bar["name"]] == level
        assert sum(lvl != "central" for lvl in variant.levels.values()) == 1
        assert peak_hour(simulate(variant))["requests_per_s"] == bar[level]


def test_the_span_is_around_the_peak_of_a_longer_run(baseline):
    scenario = baseline.with_overrides(start=dt.date(2025, 10, 1), end=dt.date(2025, 10, 21), scale=0.02)
    traffic = simulate(scenario)
    result = analyse(scenario, traffic)
    start, end = (dt.date.fromisoformat(day) for day in result.span)
    peak_day = dt.date.fromisoformat(peak_hour(traffic)["hour"][:10])
    assert start <= peak_day <= end and (end - start).days <= 6
    assert scenario.period.start <= start and end <= scenario.period.end
    low, central, high = (result.levels[level]["requests_per_s"] for level in LEVELS)
    assert low < central < high


@pytest.fixture(scope="module")
def ranges_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranges") / "peak"
    result = CliRunner().invoke(main, ["simulate", str(SCENARIOS / "peak-day-2026.yaml"), "--scale", "0.01",
                                       "--no-schedule", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def test_ranges_write_the_tornado_and_the_range(ranges_run):
    out, result = ranges_run
    assert (out / "sensitivity.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    spread = summary["peak_hour_range"]
    assert set(spread) == set(LEVELS) and all(set(spread[level]) >= PEAK_KEYS for level in LEVELS)
    assert spread["low"]["requests_per_s"] <= spread["central"]["requests_per_s"] <= spread["high"]["requests_per_s"]
    assert spread["low"]["requests_per_s"] < spread["high"]["requests_per_s"]
    assert spread["central"]["requests_per_s"] == pytest.approx(summary["peak_hour"]["per_second"], abs=1e-2)
    scenario = load_scenario(SCENARIOS / "peak-day-2026.yaml")
    assert [a["name"] for a in summary["assumptions"]] == list(scenario.assumptions)
    for entry in summary["assumptions"]:
        assert {"name", "low", "central", "high", "unit", "why"} <= set(entry)
        assumption = scenario.assumptions[entry["name"]]
        assert (entry["low"], entry["central"], entry["high"]) == (assumption.low, assumption.central, assumption.high)
        assert entry["unit"] and entry["why"]
    assert [bar["name"] for bar in summary["sensitivity"]["bars"]]
    assert "across the assumptions" in result.stderr


def test_no_ranges_writes_no_tornado(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["simulate", str(SCENARIOS / "peak-day-2026.yaml"), "--scale", "0.01",
                                       "--no-schedule", "--no-plots", "--no-ranges", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert not (out / "sensitivity.png").exists() and "sensitivity" not in summary
    assert summary["peak_hour_range"]["low"] == summary["peak_hour_range"]["high"]   # one run: no range measured
