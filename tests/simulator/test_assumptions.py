"""Assumptions: each names the key(s) it sets and a low / central / high value; a file cannot set them aside."""

import datetime as dt
from pathlib import Path

import pytest
import yaml

from segur.errors import InputError
from simulator.scenario import LEVELS, load_scenario

BASELINE = Path(__file__).resolve().parents[2] / "scenarios" / "baseline-2025.yaml"


def _at(data, path: str):
    """The value at a dotted path of a model_dump (date keys spelled YYYY-MM-DD); KeyError if absent."""
    node = data
    for part in path.split("."):
        matches = [key for key in node if str(key) == part]
        if not matches:
            raise KeyError(path)
        node = node[matches[0]]
    return node


def _flatten(data, prefix=()):
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, prefix + (str(key),)))
        return out if out else {prefix: data}
    if isinstance(data, list):
        out = {}
        for index, value in enumerate(data):
            out.update(_flatten(value, prefix + (str(index),)))
        return out if out else {prefix: data}
    return {prefix: data}


def _child(tmp_path: Path, name: str, text: str, parent: Path = BASELINE) -> Path:
    path = tmp_path / name
    path.write_text(f"extends: {parent}\n{text}")
    return path


def _error(path: Path, level: str = "central") -> str:
    with pytest.raises(InputError) as error:
        load_scenario(path, level)
    return str(error.value)


@pytest.mark.parametrize("scenario", ["baseline-2025", "peak-day-2026", "what-if-obligation-2026", "lab-strike"])
@pytest.mark.parametrize("level", LEVELS)
def test_each_value_lands_at_its_paths(scenario, level):
    loaded = load_scenario(BASELINE.parent / f"{scenario}.yaml", level)
    assert loaded.assumptions and loaded.levels == {name: level for name in loaded.assumptions}
    assert loaded.level == level
    data = loaded.model_dump()
    for name, assumption in loaded.assumptions.items():
        for path in assumption.paths:
            assert _at(data, path) == pytest.approx(assumption.value(level)), (name, path)


def test_levels_give_different_values_and_a_child_can_change_the_range():
    low, high = load_scenario(BASELINE, "low"), load_scenario(BASELINE, "high")
    sessions, notified = low.assumptions["patient_sessions"], low.assumptions["notified_share"]
    assert low.patients.sessions_per_connecting_user_per_month == sessions.low
    assert high.patients.sessions_per_connecting_user_per_month == sessions.high != sessions.low
    assert notified.low > notified.high                        # low may be the larger number (least traffic)
    assert (low.patients.notified_session_share, high.patients.notified_session_share) == (notified.low, notified.high)
    knot = low.assumptions["hospital_search_2025"]             # a date key, written YYYY-MM-DD in the path
    date_key = dt.date.fromisoformat(knot.paths[0].rsplit(".", 1)[1])
    assert low.sectors["hospital"].visits.dmp_search_share.knots[date_key] == knot.low
    assert high.sectors["hospital"].visits.dmp_search_share.knots[date_key] == knot.high
    flush = low.assumptions["minute_flush"]                    # one value, several keys
    assert {low.sectors[s].batching.minute_share for s in ("hospital", "lab", "imaging")} == {flush.low}
    assert {high.sectors[s].batching.minute_share for s in ("hospital", "lab", "imaging")} == {flush.high}
    strike = load_scenario(BASELINE.parent / "lab-strike.yaml")  # the child's range, the parent's path
    withheld = strike.assumptions["lab_strike_withheld"]
    assert withheld.paths == low.assumptions["lab_strike_withheld"].paths
    assert withheld.central != low.assumptions["lab_strike_withheld"].central
    assert strike.events["lab-strike-2024"].withheld_share == withheld.central


@pytest.mark.parametrize("text, key, owner", [
    ("patients:\n  retrieves_per_session: 2.5\n", "patients.retrieves_per_session", "patient_views"),
    ("sectors:\n  lab:\n    batching:\n      minute_share: 0.5\n", "sectors.lab.batching.minute_share", "minute_flush"),
    ("sectors:\n  town_doctor:\n    dmp_share:\n      ceiling: 0.9\n", "sectors.town_doctor.dmp_share.ceiling",
     "town_ceiling"),
    ("sectors:\n  hospital:\n    visits:\n      dmp_search_share:\n        knots:\n          2025-09-30: 0.2\n",
     "sectors.hospital.visits.dmp_search_share.knots.2025-09-30", "hospital_search_2025"),
    ("events:\n  lab-strike-2024:\n    withheld_share: 0.4\n", "events.lab-strike-2024.withheld_share",
     "lab_strike_withheld"),
])
def test_a_file_that_sets_a_governed_key_is_refused(tmp_path, text, key, owner):
    message = _error(_child(tmp_path, "sets-it.yaml", text))
    assert "sets-it.yaml" in message and key in message and owner in message


def test_the_baseline_itself_sets_no_governed_key():
    raw = yaml.safe_load(BASELINE.read_text())
    for name, assumption in raw["assumptions"].items():
        for path in [assumption["path"]] if isinstance(assumption["path"], str) else assumption["path"]:
            with pytest.raises(KeyError):
                _at(raw, path)


@pytest.mark.parametrize("level", ["medium", "LOW", "", "all"])
def test_an_unknown_level_is_refused(level):
    message = _error(BASELINE, level)
    assert "low" in message and "central" in message and "high" in message
    baseline = load_scenario(BASELINE)
    with pytest.raises(InputError, match="low, central, high"):
        baseline.at_levels(level)
    with pytest.raises(InputError, match="patient_sessions"):
        baseline.at_levels({"patient_sessions": level})


def test_an_unknown_assumption_name_is_refused():
    with pytest.raises(InputError, match="no assumption named no_such_thing"):
        load_scenario(BASELINE).at_levels({"no_such_thing": "high"})


@pytest.mark.parametrize("low, central, high, ok", [
    (1.0, 2.0, 3.0, True),
    (3.0, 2.0, 1.0, True),     # low and high are the least and the most traffic: low may be the larger number
    (1.0, 1.0, 3.0, True),
    (1.0, 4.0, 3.0, False),
    (1.0, 0.5, 3.0, False),
    (3.0, 0.5, 1.0, False),
])
def test_central_must_lie_between_low_and_high(tmp_path, low, central, high, ok):
    text = (f"assumptions:\n  patient_sessions:\n    low: {low}\n    central: {central}\n    high: {high}\n")
    path = _child(tmp_path, "range.yaml", text)
    if ok:
        assert load_scenario(path).patients.sessions_per_connecting_user_per_month == central
    else:
        message = _error(path)
        assert "range.yaml" in message and "assumptions.patient_sessions" in message and "central" in message


def test_a_new_assumption_needs_a_unit_and_a_why(tmp_path):
    text = "assumptions:\n  pace:\n    path: seasonality.christmas_week\n    low: 0.8\n    central: 0.9\n    high: 1.0\n"
    message = _error(_child(tmp_path, "new.yaml", text))
    assert "new.yaml" in message and "assumptions.pace.unit" in message and "assumptions.pace.why" in message


@pytest.mark.parametrize("start", ["central", "low"])
def test_at_levels_changes_only_that_one(start):
    base = load_scenario(BASELINE, start)
    name = "patient_views"
    changed = base.at_levels({name: "high"})
    assert changed.levels == {**base.levels, name: "high"} and changed.level == "mixed"
    before, after = _flatten(base.model_dump()), _flatten(changed.model_dump())
    assert before.keys() == after.keys()
    differ = {key for key in before if before[key] != after[key]}
    assert differ == {("patients", "retrieves_per_session"), ("levels", name)}
    assert after[("patients", "retrieves_per_session")] == base.assumptions[name].high
    # and one assumption with several paths moves all of them, nothing else
    several = base.at_levels({"campaign_response": "high"})
    after = _flatten(several.model_dump())
    differ = {key for key in before if before[key] != after[key]}
    paths = {tuple(path.split(".")) for path in base.assumptions["campaign_response"].paths}
    assert differ == paths | {("levels", "campaign_response")} and len(paths) == 5
    # back to where it was: the same scenario
    assert changed.at_levels({name: start}) == base
