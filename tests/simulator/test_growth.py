"""Curves that go on after their last date, S-curves of adoption, and "next year, +30 %" as one key."""

import datetime as dt

import numpy as np
import pytest

from segur.errors import InputError
from simulator.calendar import Calendar
from simulator.patients import expected_activity, expected_sessions
from simulator.production import expected_deposits, expected_visits, volume
from simulator.profiles import curve_per_day
from simulator.scenario import Adoption, Curve, Scenario, load_scenario

D = dt.date
CALENDAR = Calendar(D(2024, 1, 1), D(2029, 12, 31))


def _value(values, day):
    return values[CALENDAR.day_index(day)]


def test_a_curve_grows_after_its_last_knot_up_to_its_cap():
    curve = Curve(knots={D(2024, 6, 1): 1.0, D(2025, 1, 1): 2.0}, growth_per_year=0.5, cap=4.0)
    values = curve_per_day(curve, CALENDAR)
    assert _value(values, D(2024, 1, 1)) == 1.0                               # flat before the first knot
    assert _value(values, D(2025, 1, 1)) == 2.0
    last = CALENDAR.day_index(D(2025, 1, 1))
    one_year = _value(values, D(2026, 1, 1))
    assert one_year == pytest.approx(2.0 * 1.5 ** (365 / 365.25), rel=1e-12)   # compounded, per day
    assert np.all(np.diff(values[last:]) >= 0) and np.any(np.diff(values[last:]) > 0)
    assert values.max() == 4.0 and _value(values, D(2029, 12, 31)) == 4.0      # never above the cap
    first_at_cap = int(np.argmax(values >= 4.0))
    assert first_at_cap == last + int(np.ceil(np.log(2.0) / np.log(1.5) * 365.25))  # 2 x 1.5^t = 4


def test_no_growth_is_flat_and_no_cap_keeps_growing():
    flat = curve_per_day(Curve(knots={D(2025, 1, 1): 3.0}), CALENDAR)
    assert np.all(flat == 3.0)
    growing = curve_per_day(Curve(knots={D(2025, 1, 1): 3.0}, growth_per_year=0.3), CALENDAR)
    assert _value(growing, D(2029, 12, 31)) > 3.0 * 1.3 ** 4.9
    falling = curve_per_day(Curve(knots={D(2025, 1, 1): 3.0}, growth_per_year=-0.2, cap=10.0), CALENDAR)
    assert np.all(np.diff(falling[CALENDAR.day_index(D(2025, 1, 1)):]) < 0)


def test_a_cap_below_the_last_knot_never_lowers_it():
    values = curve_per_day(Curve(knots={D(2025, 1, 1): 3.0}, growth_per_year=0.3, cap=2.0), CALENDAR)
    assert np.all(values == 3.0)


@pytest.mark.parametrize("floor, ceiling", [(0.0, 0.9), (0.1, 0.7), (0.3, 0.3)])
def test_an_s_curve_is_10_and_90_percent_of_the_way_half_its_width_around_the_midpoint(floor, ceiling):
    half_days = 730
    adoption = Adoption(ceiling=ceiling, midpoint=D(2027, 1, 1), years_10_90=2 * half_days / 365.25, floor=floor)
    values = curve_per_day(adoption, CALENDAR)
    middle = CALENDAR.day_index(D(2027, 1, 1))
    way = ceiling - floor
    assert values[middle] == pytest.approx(floor + 0.5 * way, abs=1e-12)
    assert values[middle - half_days] == pytest.approx(floor + 0.1 * way, abs=1e-12)
    assert values[middle + half_days] == pytest.approx(floor + 0.9 * way, abs=1e-12)
    assert np.all(values >= floor) and np.all(values <= ceiling) and np.all(np.diff(values) >= 0)
    if way:
        assert np.all(np.diff(values) > 0)


def test_an_s_curve_needs_floor_below_ceiling():
    with pytest.raises(ValueError, match="floor <= ceiling"):
        Adoption(ceiling=0.3, midpoint=D(2027, 1, 1), years_10_90=3, floor=0.5)


def test_baseline_adoption_goes_on_past_2026(baseline):
    scenario = baseline.with_overrides(start=D(2026, 12, 1), end=D(2027, 12, 31), scale=1.0)
    calendar = Calendar(scenario.period.start, scenario.period.end)
    total = np.sum(list(expected_deposits(scenario, calendar).values()), axis=0).reshape(calendar.days, -1).sum(axis=1)
    december_2026 = total[:31].sum()
    december_2027 = total[calendar.day_index(D(2027, 12, 1)):].sum()
    assert december_2027 > 1.05 * december_2026
    # every sector's share sent still moves in 2027 (no curve silently flat at its last date)
    for name, sector in scenario.sectors.items():
        share = curve_per_day(sector.dmp_share, calendar)
        assert share[-1] > share[0], name


def _with_uplift(scenario: Scenario, uplift: float) -> Scenario:
    return Scenario.model_validate({**scenario.model_dump(), "uplift": uplift})


def test_an_uplift_multiplies_every_expected_volume_exactly(baseline):
    day = baseline.with_overrides(start=D(2026, 3, 2), end=D(2026, 3, 3), scale=0.2)
    plus = _with_uplift(day, 0.3)
    assert volume(plus) == pytest.approx(1.3 * volume(day), rel=1e-15)
    calendar = Calendar(day.period.start, day.period.end)
    for rates in (expected_deposits, expected_visits):
        base, more = rates(day, calendar), rates(plus, calendar)
        for sector in base:
            assert base[sector].sum() > 0
            np.testing.assert_allclose(more[sector], 1.3 * base[sector], rtol=1e-12)
    base = expected_sessions(day.patients, volume(day), calendar)
    assert base.sum() > 0
    np.testing.assert_allclose(expected_sessions(plus.patients, volume(plus), calendar), 1.3 * base, rtol=1e-12)
    uploads = expected_activity(day.patients, 0.35, volume(day), calendar)
    np.testing.assert_allclose(expected_activity(plus.patients, 0.35, volume(plus), calendar), 1.3 * uploads, rtol=1e-12)


def test_uplift_is_one_key_of_a_scenario_file(tmp_path, scenarios_dir):
    path = tmp_path / "next-year.yaml"
    path.write_text(f"extends: {scenarios_dir / 'peak-day-2026.yaml'}\nname: next-year\nuplift: 0.3\n")
    scenario = load_scenario(path)
    assert scenario.uplift == 0.3 and volume(scenario) == pytest.approx(1.3 * scenario.scale)
    path.write_text(f"extends: {scenarios_dir / 'peak-day-2026.yaml'}\nname: next-year\nuplift: -1.5\n")
    with pytest.raises(InputError, match="next-year.yaml: uplift"):
        load_scenario(path)
