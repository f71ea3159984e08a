"""The 2026 obligation was struck out: it is in no planning scenario, only in the what-if, with both halves."""

import pytest

from simulator.engine import simulate
from simulator.scenario import Obligation, load_scenario
from simulator.sensitivity import peak_hour


def _obligations(scenario):
    return {name: event for name, event in scenario.active_events().items()
            if isinstance(event, Obligation) and event.kind == "obligation"}


@pytest.mark.parametrize("name", ["baseline-2025", "peak-day-2026", "plan-2026"])
def test_no_obligation_in_the_planning_scenarios(scenarios_dir, name):
    for level in ("low", "central", "high"):
        scenario = load_scenario(scenarios_dir / f"{name}.yaml", level)
        assert _obligations(scenario) == {}
        assert all(event.kind != "obligation" for event in scenario.active_events().values())


def test_the_what_if_has_both_halves_of_the_struck_out_article(scenarios_dir):
    what_if = load_scenario(scenarios_dir / "what-if-obligation-2026.yaml")
    obligations = _obligations(what_if)
    assert len(obligations) == 1
    (event,) = obligations.values()
    assert event.dmp_share >= 0.9                                    # feeding
    assert event.consultation_share is not None and event.consultation_share > 0   # consulting
    assert set(event.consultation_sectors) == {"town_doctor", "hospital"}
    # the what-if is the planning day plus the obligation, nothing else
    peak = load_scenario(scenarios_dir / "peak-day-2026.yaml")
    assert what_if.period == peak.period and what_if.sectors == peak.sectors
    assert set(what_if.active_events()) == set(peak.active_events()) | set(obligations)


def test_the_what_if_peak_hour_is_higher(scenarios_dir):
    peaks = {}
    for name in ("peak-day-2026", "what-if-obligation-2026"):
        scenario = load_scenario(scenarios_dir / f"{name}.yaml").with_overrides(scale=0.01)
        assert scenario.period.start == scenario.period.end                  # one day: quick
        peaks[name] = peak_hour(simulate(scenario))
    what_if, plan = peaks["what-if-obligation-2026"], peaks["peak-day-2026"]
    assert what_if["requests_per_s"] > 1.05 * plan["requests_per_s"]
    assert what_if["deposits_per_s"] > plan["deposits_per_s"]               # more sent
    assert what_if["reads_per_s"] > plan["reads_per_s"]                     # more searched
