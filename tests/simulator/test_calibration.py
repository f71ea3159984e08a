"""The baseline reproduces the published figures; the event scenarios show what they must.

These run the national model (scale 1) over the months that matter: a second or two each.
"""

import datetime as dt

import numpy as np
import pytest

from simulator.calendar import Calendar
from simulator.engine import simulate
from simulator.outputs import patient_usage, professional_deposits_by_month
from simulator.patients import expected_sessions
from simulator.production import search_share, share_sent, volume
from simulator.scenario import PROFESSIONAL_SECTORS, load_scenario

D = dt.date


@pytest.fixture(scope="module")
def two_octobers(baseline):
    return professional_deposits_by_month(simulate(baseline.with_overrides(start=D(2024, 10, 1), end=D(2025, 10, 31))))


def test_october_2024_above_30_million(two_octobers):
    assert two_octobers["2024-10"] > 30e6


def test_october_2025_is_42_8_million_within_5_percent(two_octobers):
    assert abs(two_octobers["2025-10"] / 42.8e6 - 1) <= 0.05


def test_growth_is_about_40_percent_a_year(two_octobers):
    assert 0.30 <= two_octobers["2025-10"] / two_octobers["2024-10"] - 1 <= 0.50


def test_history_from_2023_grows_every_year(baseline):
    by_month = professional_deposits_by_month(simulate(baseline.with_overrides(scale=0.01)))
    assert min(by_month) == "2023-01"
    januaries = [by_month[f"{year}-01"] for year in (2023, 2024, 2025)]
    assert januaries[0] < januaries[1] < januaries[2]


@pytest.fixture(scope="module")
def october_2025(baseline):
    return simulate(baseline.with_overrides(start=D(2025, 10, 1), end=D(2025, 10, 31), scale=0.05))


def test_patients_read_as_much_as_the_published_usage_says(october_2025):
    # ≈ 2.5 M people connect a month (CNAM): patient reads are tens of millions, not the 118 M of a
    # model where 90 % of the documents on activated profiles are opened; the platform is write-dominated
    traffic, scale = october_2025, october_2025.scenario.scale
    usage = patient_usage(traffic)
    assert 5e6 < usage["patient_reads"] / scale <= 50e6
    assert 0.3 <= usage["reads_per_professional_deposit"] <= 0.8
    # the notified documents opened are a small share of the deposits, not > 90 % of those on activated profiles
    deposits = traffic.total(operations=("deposit",), sectors=PROFESSIONAL_SECTORS).sum()
    active_share = traffic.scenario.patients.active_deposit_bias * 23e6 / 65e6
    assert usage["documents_opened_after_notification_share"] == pytest.approx(traffic.consultations.sum() / deposits,
                                                                                abs=1e-4)
    assert traffic.consultations.sum() / deposits < 0.5 * 0.9 * active_share


def test_notified_consultations_are_the_notified_share_of_sessions(october_2025):
    traffic = october_2025
    scenario = traffic.scenario
    sessions = expected_sessions(scenario.patients, volume(scenario), traffic.calendar).sum()
    assert sessions > 0
    notified = traffic.consultations.sum()
    assert notified == pytest.approx(scenario.patients.notified_session_share * sessions, rel=0.04)
    # every notified session opens its list first: part of the patient searches
    patient_searches = traffic.series("search", "patient").sum()
    assert notified < patient_searches


def _daily_lab(scenario):
    traffic = simulate(scenario)
    return traffic, traffic.series("deposit", "lab").reshape(-1, 1440).sum(axis=1)


def test_strike_shows_the_dip_and_the_catch_up(scenarios_dir):
    scenario = load_scenario(scenarios_dir / "lab-strike.yaml").with_overrides(scale=0.1)
    traffic, lab = _daily_lab(scenario)
    calendar = traffic.calendar
    weekdays = calendar.weekday < 5
    day = lambda d: calendar.day_index(d)  # noqa: E731
    before = lab[day(D(2024, 11, 4)):day(D(2024, 11, 14))][weekdays[day(D(2024, 11, 4)):day(D(2024, 11, 14))]].mean()
    during = lab[day(D(2024, 11, 14)):day(D(2024, 11, 25))][weekdays[day(D(2024, 11, 14)):day(D(2024, 11, 25))]].mean()
    first_days_after = lab[day(D(2024, 11, 25)):day(D(2024, 11, 28))].mean()
    assert during < 0.5 * before            # 70 % withheld
    assert first_days_after > 1.2 * before  # the catch-up comes on top of the normal flow
    strike = traffic.ledger.strikes["lab-strike-2024:lab"]
    assert strike.withheld > 0 and strike.delivered_later + strike.never_sent + strike.pending_at_end == strike.withheld
    assert traffic.ledger.balanced


def test_outage_burst_after_recovery_and_nothing_lost(scenarios_dir):
    scenario = load_scenario(scenarios_dir / "outage-recovery.yaml")
    traffic = simulate(scenario)
    deposits = traffic.total(operations=("deposit",), sectors=PROFESSIONAL_SECTORS)
    start = traffic.calendar.minute_index(dt.datetime(2025, 11, 18, 9, 0))
    down = slice(start, start + 240)
    assert deposits[down].sum() == 0                        # nothing accepted while down
    assert traffic.platform_down[down].all() and traffic.platform_down.sum() == 240
    after = deposits[start + 240:start + 300].sum()         # the first hour back
    same_hour_day_before = deposits[start + 240 - 1440:start + 300 - 1440].sum()
    assert after > 3 * same_hour_day_before
    outage = traffic.ledger.outages["outage-2025-11"]
    assert outage.produced > 0 and outage.produced == outage.delivered and outage.pending_at_end == 0
    ledger = traffic.ledger
    # documents produced = delivered, but for the last batches, which leave at the midnight after the period
    assert ledger.balanced and ledger.never_sent == 0
    assert ledger.pending_at_end < deposits[-60:].sum()
    assert traffic.refused_during_outage["search"] > 0           # reads during the outage failed


def test_obligation_lifts_every_sector_to_its_floor(scenarios_dir):
    # only in the what-if: the 2026 obligation was struck out (Conseil constitutionnel, 30 Dec 2025)
    what_if = load_scenario(scenarios_dir / "what-if-obligation-2026.yaml").with_overrides(
        start=D(2026, 6, 1), end=D(2026, 12, 31))
    obligation = what_if.events["obligation-2026"]
    events = {k: v for k, v in what_if.events.items() if k != "obligation-2026"}
    without = what_if.model_copy(update={"events": events})
    calendar = Calendar(what_if.period.start, what_if.period.end)
    before, after = calendar.day_index(D(2026, 6, 30)), calendar.day_index(D(2026, 12, 1))
    for name, sector in what_if.sectors.items():
        lifted, trend = share_sent(what_if, name, sector, calendar), share_sent(without, name, sector, calendar)
        assert lifted[before] == trend[before]                      # nothing changes before the date
        assert lifted[after] >= 0.95 - 1e-9                         # the floor once the ramp is over
        assert np.all(lifted >= trend)                              # a floor never lowers a share
        assert np.all(np.diff(lifted[before:]) >= -1e-12)           # the ramp only goes up
        # the other half: the DMP searched before costly prescriptions, in town and at hospitals only
        searched, usual = search_share(what_if, name, sector, calendar), search_share(without, name, sector, calendar)
        assert searched[before] == usual[before] and np.all(searched >= usual)
        if name in obligation.consultation_sectors:
            assert searched[after] >= obligation.consultation_share - 1e-9
        else:
            np.testing.assert_array_equal(searched, usual)
