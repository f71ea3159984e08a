"""Scenario files: every shipped one loads; bad ones fail naming the file, the key path and what was expected."""

import datetime as dt
from pathlib import Path

import pytest
import yaml

from segur.errors import InputError
from simulator.scenario import PROFESSIONAL_SECTORS, Adoption, LabStrike, load_scenario


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    """The message of the InputError that loading ``path`` must raise."""
    with pytest.raises(InputError) as error:
        load_scenario(path)
    return str(error.value)


def _baseline_child(directory: Path, name: str, text: str, scenarios_dir: Path) -> Path:
    return _write(directory, name, f"extends: {scenarios_dir / 'baseline-2025.yaml'}\n{text}")


@pytest.mark.parametrize("name", ["baseline-2025", "peak-day-2026", "plan-2026", "what-if-obligation-2026",
                                  "lab-strike", "outage-recovery", "smoke"])
def test_shipped_scenarios_load(scenarios_dir, name):
    scenario = load_scenario(scenarios_dir / f"{name}.yaml")
    assert scenario.name == name
    assert list(scenario.sectors) == list(PROFESSIONAL_SECTORS)


def test_baseline_history_starts_by_2023_and_runs_to_end_of_2026(baseline):
    assert baseline.period.start <= dt.date(2023, 1, 1)
    extended = baseline.with_overrides(end=dt.date(2026, 12, 31))
    assert extended.period.end == dt.date(2026, 12, 31)
    # every sector's share sent is defined past 2026: an S-curve, or knots to the end of 2026 at least
    for sector in baseline.sectors.values():
        if isinstance(sector.dmp_share, Adoption):
            assert sector.dmp_share.floor < sector.dmp_share.ceiling
        else:
            assert max(sector.dmp_share.knots) >= dt.date(2026, 12, 31)


def test_extends_merges_and_overrides_one_event_parameter(scenarios_dir):
    strike = load_scenario(scenarios_dir / "lab-strike.yaml")
    base = load_scenario(scenarios_dir / "baseline-2025.yaml")
    event, base_event = strike.events["lab-strike-2024"], base.events["lab-strike-2024"]
    assert isinstance(event, LabStrike)
    assert event.withheld_share == 0.7 and base_event.withheld_share == 0.25
    assert event.start == base_event.start  # inherited, not repeated
    assert strike.sectors == base.sectors


def test_unknown_key_names_file_and_path(tmp_path, scenarios_dir):
    message = _error(_baseline_child(tmp_path, "child.yaml", "patients:\n  consultation_probabilty: 0.9\n", scenarios_dir))
    assert "child.yaml" in message and "patients.consultation_probabilty" in message and "unknown key" in message


def test_wrong_type_names_path_and_expectation(tmp_path, scenarios_dir):
    message = _error(_baseline_child(tmp_path, "bad.yaml", "sectors:\n  lab:\n    producers: lots\n", scenarios_dir))
    assert "bad.yaml: sectors.lab.producers" in message and "integer" in message and "'lots'" in message


def test_error_in_an_inherited_key_names_the_parent(tmp_path):
    parent = _write(tmp_path, "parent.yaml", "name: p\nseasonality:\n  monthly: [1, 2]\n")
    message = _error(_write(tmp_path, "child.yaml", "extends: parent.yaml\nname: c\n"))
    assert "parent.yaml: seasonality.monthly" in message
    assert "child.yaml: description: required key is missing" in message


def test_event_errors_hide_the_union_tag(tmp_path, scenarios_dir):
    text = "events:\n  cut:\n    kind: outage\n    start: 2025-01-01T09:00:00\n    duration_minutes: -5\n"
    assert "events.cut.duration_minutes" in _error(_baseline_child(tmp_path, "ev.yaml", text, scenarios_dir))


def test_unknown_event_kind(tmp_path, scenarios_dir):
    message = _error(_baseline_child(tmp_path, "ev.yaml", "events:\n  x:\n    kind: meteor\n", scenarios_dir))
    assert "events.x" in message and "lab_strike" in message


def test_missing_sector_is_named(tmp_path, scenarios_dir):
    base = (scenarios_dir / "baseline-2025.yaml").read_text()
    start = base.index("  imaging:\n")
    end = base.index("  pharmacy:\n")
    # the baseline's assumptions still set sectors.imaging.* (ceiling, flushes): the message names the
    # assumption, the file that declares it and the missing sector
    message = _error(_write(tmp_path, "no-imaging.yaml", base[:start] + base[end:]))
    assert "no-imaging.yaml: assumptions.imaging_ceiling.path: sectors.imaging.dmp_share.ceiling" in message
    assert "no mapping 'imaging' under sectors" in message
    # with no assumption pointing into it, the sector is reported missing as a whole
    data = yaml.safe_load(base)
    del data["sectors"]["imaging"]
    for name, assumption in list(data["assumptions"].items()):
        paths = [assumption["path"]] if isinstance(assumption["path"], str) else assumption["path"]
        kept = [path for path in paths if not path.startswith("sectors.imaging.")]
        if kept:
            assumption["path"] = kept
        else:
            del data["assumptions"][name]
    message = _error(_write(tmp_path, "no-imaging-2.yaml", yaml.safe_dump(data)))
    assert "no-imaging-2.yaml: sectors: " in message and "missing: imaging" in message


def test_extends_loop_bad_yaml_and_missing_file(tmp_path):
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(InputError, match="loops"):
        load_scenario(tmp_path / "a.yaml")
    with pytest.raises(InputError, match="not valid YAML"):
        load_scenario(_write(tmp_path, "c.yaml", "name: [unclosed\n"))
    with pytest.raises(InputError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="mapping"):
        load_scenario(_write(tmp_path, "d.yaml", "- a list\n"))


def test_overrides_are_validated(baseline):
    with pytest.raises(InputError, match="end is before start"):
        baseline.with_overrides(start=dt.date(2025, 2, 1), end=dt.date(2025, 1, 1))
    assert baseline.with_overrides(scale=0.5, seed=3).scale == 0.5


@pytest.mark.parametrize("text, expected", [
    ("period: {start: 2025-02-30, end: 2025-03-01}", "child.yaml: period.start: "),
    ("name: a\nname: b", "the key 'name' is written twice"),
    ("events:\n  x: {start: 2025-10-14, end: 2025-10-15}", "events.x: an event needs a kind: one of lab_strike"),
    ("events:\n  x: {kind: strike}", "events.x: unknown event kind"),
    ("sectors:\n  town_doctor:\n    visits:\n      dmp_search_share: {knots: {2023-01-01: 1.5}}",
     "sectors.town_doctor.visits.dmp_search_share.knots.2023-01-01: Input should be less than or equal to 1"),
    ("sectors:\n  pharmacy:\n    dmp_share: {knots: {2023-01-01: 0.2}, cap: 1.2}", "sectors.pharmacy.dmp_share"),
    ("patients:\n  connecting_users: {knots: {2023-01-01: -5}}",
     "patients.connecting_users.knots.2023-01-01: Input should be greater than or equal to 0"),
])
def test_impossible_values_are_precise_errors(tmp_path, scenarios_dir, text, expected):
    message = _error(_baseline_child(tmp_path, "child.yaml", f"name: child\n{text}" if not text.startswith("name")
                                     else text, scenarios_dir))
    assert expected in message and "Traceback" not in message


def test_events_outside_the_period_are_said_apart(scenarios_dir):
    scenario = load_scenario(scenarios_dir / "peak-day-2026.yaml")
    inside, outside = scenario.events_in_period()
    assert inside == ["flu-2026"] and "lab-strike-2024" in outside and "prevention-2025-autumn" in outside
    baseline = load_scenario(scenarios_dir / "baseline-2025.yaml")
    assert "lab-strike-2024" in baseline.events_in_period()[0] and not baseline.events_in_period()[1]
