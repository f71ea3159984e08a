"""Events inside the engine: nothing created or lost by an outage's retries, a campaign or a back-load;
flushes at the second reach the replay schedule; an uplift scales everything."""

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from simulator.engine import OPERATIONS, SECTORS, simulate
from simulator.scenario import PROFESSIONAL_SECTORS, Outage, load_scenario
from simulator.schedule import build_replay, busiest_window

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
D = dt.date


def _switched_off(scenario, name):
    events = dict(scenario.events)
    events[name] = events[name].model_copy(update={"enabled": False})
    return scenario.model_copy(update={"events": events})


# --- an outage: people retry what was refused --------------------------------------------------


@pytest.fixture(scope="module")
def outage():
    scenario = load_scenario(SCENARIOS / "outage-recovery.yaml")
    (name,) = [n for n, e in scenario.active_events().items() if isinstance(e, Outage)]
    return scenario, name, simulate(scenario), simulate(_switched_off(scenario, name))


def test_every_refused_request_is_retried_abandoned_or_pending(outage):
    _, _, traffic, _ = outage
    assert traffic.retries
    by_operation: dict[str, int] = {}
    for key, outcome in traffic.retries.items():
        operation, sector = key.split(":")
        assert operation in OPERATIONS and sector in SECTORS
        assert not (operation == "deposit" and sector != "patient")   # professionals' connectors queue, not people
        assert outcome.refused > 0
        assert outcome.refused == outcome.retried + outcome.abandoned + outcome.pending_at_end, key
        assert min(outcome.retried, outcome.abandoned, outcome.pending_at_end) >= 0
        by_operation[operation] = by_operation.get(operation, 0) + outcome.refused
    assert by_operation == traffic.refused_during_outage
    assert {"search:patient", "retrieve:patient", "search:hospital", "deposit:patient"} <= set(traffic.retries)
    assert sum(outcome.retried for outcome in traffic.retries.values()) > 0


def test_nothing_is_accepted_while_down_and_retries_come_after(outage):
    scenario, name, traffic, _ = outage
    down = np.flatnonzero(traffic.platform_down)
    assert down.size == scenario.events[name].duration_minutes
    assert traffic.counts[:, :, down].sum() == 0
    assert traffic.consultations[down].sum() == 0


def test_professional_reads_are_the_same_less_the_refused_plus_the_retried(outage):
    # professional reads do not depend on deposits: the run without the outage draws the same ones
    _, _, traffic, calm = outage
    first = int(np.flatnonzero(traffic.platform_down)[0])
    for operation in ("search", "retrieve"):
        for sector in PROFESSIONAL_SECTORS:
            outcome = traffic.retries[f"{operation}:{sector}"]
            with_outage, without = traffic.series(operation, sector), calm.series(operation, sector)
            np.testing.assert_array_equal(with_outage[:first], without[:first])   # the past is untouched
            assert with_outage.sum() == without.sum() - outcome.refused + outcome.retried
            assert outcome.refused == without[traffic.platform_down].sum()


def test_the_deposit_ledger_balances_through_the_outage(outage):
    _, name, traffic, calm = outage
    assert traffic.ledger.balanced and calm.ledger.balanced
    assert traffic.ledger.outages[name].produced == traffic.ledger.outages[name].delivered  # nothing lost


# --- a campaign -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign(baseline):
    scenario = baseline.with_overrides(start=D(2025, 10, 1), end=D(2025, 10, 14), scale=0.1)
    name = "prevention-2025-autumn"
    assert scenario.events[name].date == D(2025, 10, 7)
    return scenario, name, simulate(scenario), simulate(_switched_off(scenario, name))


def test_campaign_responders_are_all_placed_once(campaign):
    scenario, name, traffic, calm = campaign
    assert set(traffic.campaigns) == {n for n, e in scenario.active_events().items() if e.kind == "campaign"}
    assert name not in calm.campaigns
    for key, outcome in traffic.campaigns.items():
        assert 0 < outcome.responders <= outcome.notified
        assert outcome.responders == outcome.in_period + outcome.before_period + outcome.after_period, key
    inside = traffic.campaigns[name]
    assert inside.in_period == inside.responders > 0
    assert traffic.campaigns["activation-mailing-2025-01"].before_period == traffic.campaigns[
        "activation-mailing-2025-01"].responders


def test_patient_searches_jump_on_the_campaign_day(campaign):
    scenario, name, traffic, calm = campaign
    searches = traffic.series("search", "patient").reshape(-1, 1440).sum(axis=1)
    day = traffic.calendar.day_index(scenario.events[name].date)
    assert searches[day] > 1.1 * searches[day - 1]
    quiet = calm.series("search", "patient").reshape(-1, 1440).sum(axis=1)
    np.testing.assert_array_equal(searches[:day], quiet[:day])                 # nothing before the send
    # the campaign adds its sessions' searches, no more, no fewer (Poisson noise aside)
    added = traffic.series("search", "patient").sum() - calm.series("search", "patient").sum()
    expected = traffic.campaigns[name].in_period * scenario.patients.searches_per_session
    assert abs(added - expected) <= 5 * np.sqrt(2 * searches.sum()) and added > 0


# --- a back-load -----------------------------------------------------------------------------------


def _back_load_scenario(tmp_path, enabled: bool):
    path = tmp_path / f"go-live-{enabled}.yaml".lower()
    path.write_text(f"""extends: {SCENARIOS / 'baseline-2025.yaml'}
name: go-live
period: {{start: 2025-06-02, end: 2025-06-05}}
scale: 0.1
events:
  go-live-hospitals:
    kind: back_load
    enabled: {str(enabled).lower()}
    sector: hospital
    start: 2025-06-02
    documents: 5.0e6
    per_minute: 2000
""")
    return load_scenario(path)


def test_a_back_load_adds_exactly_what_it_delivered(tmp_path):
    with_it, without = (simulate(_back_load_scenario(tmp_path, enabled)) for enabled in (True, False))
    outcome = with_it.ledger.back_loads["go-live-hospitals"]
    assert "go-live-hospitals" not in without.ledger.back_loads
    assert outcome.documents == 500_000 and outcome.delivered > 0 and outcome.pending_at_end > 0
    assert outcome.documents == outcome.before_period + outcome.delivered + outcome.pending_at_end
    added = with_it.series("deposit", "hospital") - without.series("deposit", "hospital")
    assert added.min() >= 0 and added.sum() == outcome.delivered
    minute_of_day = np.flatnonzero(added) % 1440
    assert np.all((minute_of_day >= 20 * 60) | (minute_of_day < 6 * 60))      # at night only
    for sector in PROFESSIONAL_SECTORS:
        if sector != "hospital":
            np.testing.assert_array_equal(with_it.series("deposit", sector), without.series("deposit", sector))
    for traffic in (with_it, without):
        assert traffic.ledger.balanced
    assert with_it.ledger.produced - without.ledger.produced == outcome.delivered + outcome.pending_at_end
    assert with_it.ledger.delivered - without.ledger.delivered == outcome.delivered
    assert with_it.ledger.pending_at_end - without.ledger.pending_at_end == outcome.pending_at_end


# --- flushes at the second ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def flushed_day(baseline):
    return simulate(baseline.with_overrides(start=D(2025, 10, 14), end=D(2025, 10, 14), scale=0.05))


def test_flushes_are_part_of_the_deposits(flushed_day, outage):
    for traffic in (flushed_day, outage[2]):
        professional = traffic.counts[OPERATIONS.index("deposit"), :len(PROFESSIONAL_SECTORS)]
        assert traffic.flushed.shape == professional.shape
        assert traffic.flushed.min() >= 0 and np.all(traffic.flushed <= professional)
        for index, sector in enumerate(PROFESSIONAL_SECTORS):
            if traffic.scenario.sectors[sector].batching is None:
                assert not traffic.flushed[index].any(), sector
        assert traffic.flushed.sum() > 0.1 * professional[[PROFESSIONAL_SECTORS.index(s) for s in ("lab", "hospital")]].sum()


def test_the_schedule_puts_flushes_on_the_minute_boundaries(flushed_day):
    traffic = flushed_day
    plan = build_replay(traffic, busiest_window(traffic, 10))
    window = slice(plan.window.start_minute, plan.window.end_minute)
    rows = plan.rows
    deposits = rows["operation"] == OPERATIONS.index("deposit")
    checked = 0
    for index, sector in enumerate(PROFESSIONAL_SECTORS):
        batching = traffic.scenario.sectors[sector].batching
        mine = deposits & (rows["sector"] == SECTORS.index(sector))
        offsets = np.asarray(rows["offset_s"][mine], dtype=np.float64)
        flushed = traffic.flushed[index, window]
        if batching is None:
            continue
        early = offsets % 60 < batching.flush_seconds
        # every flushed document leaves within flush_seconds of its minute's start ...
        assert early.sum() >= flushed.sum() > 0, sector
        assert early.mean() >= flushed.sum() / offsets.size
        per_minute = np.bincount((offsets[early] // 60).astype(int), minlength=plan.window.minutes)
        assert np.all(per_minute >= flushed)
        # ... far more than the uniform spread of the rest would put there
        assert early.mean() > 2 * batching.flush_seconds / 60
        checked += 1
    assert checked >= 2
