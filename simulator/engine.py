"""The engine: from a scenario to counts of operations per minute, sector and kind.

The model modules give *expected* rates as numpy arrays over every minute of the period; the
engine draws the actual counts (Poisson, binomial, multinomial) from independent random
streams, one per component, so a seed always gives the same traffic and changing one part of
a scenario does not reshuffle the others. Disruptions (strikes, outages) act on the drawn
counts, because what they do - withhold, queue, retry - happens to real documents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, NamedTuple

import numpy as np

from simulator.backload import BackLoadOutcome, back_load
from simulator.batching import send_in_batches
from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.campaign import CampaignOutcome, campaign_sessions
from simulator.outage import OutageOutcome, apply_outage
from simulator.patients import expected_activity, expected_consultations, expected_sessions
from simulator.production import expected_deposits, expected_visits, volume
from simulator.profiles import intraday
from simulator.retries import PeopleRetryOutcome, retry_refused
from simulator.scenario import PROFESSIONAL_SECTORS, SECTORS, BackLoad, Campaign, LabStrike, Outage, Scenario
from simulator.strike import StrikeOutcome, apply_strike

OPERATIONS = ("deposit", "search", "retrieve", "mask", "delete", "block", "history")
READS = ("search", "retrieve", "history")  # history: a patient reading their record's access history (AuditEvent)

_STREAMS = ("deposits", "strikes", "outages", "consultations", "sessions", "controls", "visits", "batches",
            "campaigns", "retries", "flushes")


@dataclass
class DepositLedger:
    """Where every professional document sent (or meant to be sent) to the DMP went."""

    produced: int = 0            # documents the producers meant to send in the period
    delivered: int = 0           # accepted by the platform within the period
    never_sent: int = 0          # withheld during a strike and never caught up
    pending_at_end: int = 0      # still queued (retrying, or in a catch-up) when the period ends
    strikes: dict[str, StrikeOutcome] = field(default_factory=dict)
    outages: dict[str, OutageOutcome] = field(default_factory=dict)
    back_loads: dict[str, BackLoadOutcome] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.produced == self.delivered + self.never_sent + self.pending_at_end


class PeakHour(NamedTuple):
    """The busiest clock hour of a run: its first minute and its counts (all operations, deposits, reads)."""

    first_minute: int
    operations: np.int64
    deposits: np.int64
    reads: np.int64


@dataclass
class Traffic:
    """Operations per (operation, sector, minute) that reached the platform, plus the accounts."""

    scenario: Scenario
    calendar: Calendar
    counts: np.ndarray  # int64, shape (len(OPERATIONS), len(SECTORS), calendar.minutes)
    ledger: DepositLedger
    platform_down: np.ndarray  # bool per minute
    refused_during_outage: dict[str, int]  # reads and patient actions refused while the platform was down
    consultations: np.ndarray  # per minute: the patient searches caused by a deposit (part of patient searches)
    flushed: np.ndarray  # int64 (professional sectors, minutes): deposits sent in the first seconds of the minute
    retries: dict[str, PeopleRetryOutcome] = field(default_factory=dict)  # "operation:sector" -> what became of them
    campaigns: dict[str, CampaignOutcome] = field(default_factory=dict)

    @cached_property
    def daily(self) -> np.ndarray:
        """(operations, sectors, days): computed once, read by the CSV, the summary and the plots."""
        ops, sectors, minutes = self.counts.shape
        return self.counts.reshape(ops, sectors, minutes // MINUTES_PER_DAY, MINUTES_PER_DAY).sum(axis=3)

    @cached_property
    def per_minute(self) -> np.ndarray:
        """Every operation of every sector per minute, shape (minutes,): the peaks and the replay window read it."""
        return self.counts.sum(axis=(0, 1))

    @cached_property
    def peak_hour(self) -> PeakHour:
        """The busiest clock hour; its deposits and reads are summed over its 60 minutes only."""
        hourly = self.per_minute.reshape(-1, 60).sum(axis=1)
        hour = int(np.argmax(hourly))
        by_operation = self.counts[:, :, hour * 60:hour * 60 + 60].sum(axis=(1, 2))
        return PeakHour(hour * 60, hourly[hour], by_operation[OPERATIONS.index("deposit")],
                        by_operation[[OPERATIONS.index(o) for o in READS]].sum())

    @cached_property
    def monthly(self) -> tuple[list[str], np.ndarray]:
        """Month labels and (months, operations, sectors) counts."""
        labels = self.calendar.month_labels
        months = sorted(set(labels.tolist()))
        return months, np.stack([self.daily[:, :, labels == month].sum(axis=2) for month in months])

    def series(self, operation: str, sector: str) -> np.ndarray:
        return self.counts[OPERATIONS.index(operation), SECTORS.index(sector)]

    def total(self, operations: tuple[str, ...] = OPERATIONS, sectors: tuple[str, ...] = SECTORS) -> np.ndarray:
        """Per-minute total over some operations and sectors."""
        ops = [OPERATIONS.index(o) for o in operations]
        secs = [SECTORS.index(s) for s in sectors]
        return self.counts[np.ix_(ops, secs)].sum(axis=(0, 1))


Progress = Callable[[str], None]


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def simulate(scenario: Scenario, progress: Progress = lambda stage: None) -> Traffic:
    """Draw a scenario's traffic: counts per (operation, sector, minute) and the accounts of every event."""
    calendar = Calendar(scenario.period.start, scenario.period.end)
    rng = _streams(scenario.seed)
    counts = np.zeros((len(OPERATIONS), len(SECTORS), calendar.minutes), dtype=np.int64)
    events = scenario.active_events()

    progress("professional deposits")
    # patients read what was deposited up to a month before: simulate that month's expected deposits too
    warmup = scenario.patients.consultation_delay_max_days * MINUTES_PER_DAY
    extended = Calendar(calendar.start - dt.timedelta(days=scenario.patients.consultation_delay_max_days), calendar.end)
    extended_expected = expected_deposits(scenario, extended)
    expected = {sector: rate[warmup:] for sector, rate in extended_expected.items()}
    deposits = {sector: rng["deposits"].poisson(rate) for sector, rate in expected.items()}
    ledger = DepositLedger(produced=int(sum(d.sum() for d in deposits.values())))
    batch_flushes = {}
    for sector, series in deposits.items():
        batching = scenario.sectors[sector].batching
        if batching is not None and batching.share > 0:
            deposits[sector], waiting, batch_flushes[sector] = send_in_batches(
                series, batching.share, batching.interval_minutes, rng["batches"])
            ledger.pending_at_end += waiting
    for name, event in events.items():
        if isinstance(event, BackLoad):
            sent, outcome = back_load(event, volume(scenario), calendar)
            deposits[event.sector] = deposits[event.sector] + sent
            ledger.back_loads[name] = outcome
            ledger.produced += outcome.delivered + outcome.pending_at_end
            ledger.pending_at_end += outcome.pending_at_end

    progress("strikes and outages")
    for name, event in events.items():
        if isinstance(event, LabStrike):
            for sector in event.sectors:
                profile = intraday(scenario.sectors[sector].activity)
                outcome = apply_strike(event, deposits[sector], profile, calendar, rng["strikes"])
                ledger.strikes[f"{name}:{sector}"] = outcome
                ledger.never_sent += outcome.never_sent
                ledger.pending_at_end += outcome.pending_at_end
    platform_down = np.zeros(calendar.minutes, dtype=bool)
    outages: list[tuple[Outage, int, int]] = []
    producers = {s: (max(1, round(sector.producers * scenario.scale)), sector.size_sigma)
                 for s, sector in scenario.sectors.items()}
    for name, event in events.items():
        if isinstance(event, Outage):
            outcome = apply_outage(event, deposits, expected, producers, calendar, rng["outages"])
            ledger.outages[name] = outcome
            ledger.pending_at_end += outcome.pending_at_end
            begin = max(outcome.first_minute, 0)
            platform_down[begin:begin + outcome.down_minutes] = True
            if outcome.down_minutes:
                outages.append((event, begin, begin + outcome.down_minutes))
    for sector, series in deposits.items():
        counts[OPERATIONS.index("deposit"), SECTORS.index(sector)] = series
    ledger.delivered = int(sum(d.sum() for d in deposits.values()))
    flushed = _flushes(scenario, deposits, batch_flushes, calendar, rng["flushes"])

    progress("patients")
    before = np.sum([extended_expected[s][:warmup] for s in PROFESSIONAL_SECTORS], axis=0)
    consultations, campaigns = _patients(scenario, extended, before, deposits, counts, rng)
    progress("professional consultations")
    _professional_reads(scenario, calendar, counts, rng["visits"])

    refused, retries = {}, {}
    for event, first, last in outages:
        consultations[first:last] = 0
        for o, operation in enumerate(OPERATIONS):
            # professional deposits were queued and retried by their connectors above
            rows = [SECTORS.index("patient")] if operation == "deposit" else range(len(SECTORS))
            for row in rows:
                outcome = retry_refused(counts[o, row], first, last, event.people_retry, rng["retries"])
                if outcome.refused:
                    retries[f"{operation}:{SECTORS[row]}"] = outcome
                    refused[operation] = refused.get(operation, 0) + outcome.refused
    return Traffic(scenario, calendar, counts, ledger, platform_down, refused, consultations, flushed, retries,
                   campaigns)


def _flushes(scenario: Scenario, deposits: dict[str, np.ndarray], batch_flushes: dict[str, np.ndarray],
             calendar: Calendar, rng: np.random.Generator) -> np.ndarray:
    """Per sector and minute, the deposits that arrive at the minute's first seconds (batches, minute flushes)."""
    flushed = np.zeros((len(PROFESSIONAL_SECTORS), calendar.minutes), dtype=np.int64)
    for index, sector in enumerate(PROFESSIONAL_SECTORS):
        batching = scenario.sectors[sector].batching
        if batching is None:
            continue
        series = deposits[sector]
        cron = np.minimum(batch_flushes.get(sector, 0), series)  # a strike or an outage may have taken some
        flushed[index] = cron + rng.binomial(series - cron, batching.minute_share)
    return flushed


def _patients(scenario: Scenario, extended: Calendar, before: np.ndarray, deposits: dict[str, np.ndarray],
              counts: np.ndarray, rng: dict[str, np.random.Generator]) -> tuple[np.ndarray, dict[str, CampaignOutcome]]:
    """Patient traffic; ``extended`` starts ``before.size`` minutes (of expected deposits) before the period.

    Returns the notified sessions per minute (their first search is a consultation of the
    notified document) and the campaigns' accounts.
    """
    patients = scenario.patients
    patient = SECTORS.index("patient")
    calendar = Calendar(scenario.period.start, scenario.period.end)
    delivered = np.concatenate([before, np.sum([deposits[s] for s in PROFESSIONAL_SECTORS], axis=0)])
    sessions = expected_sessions(patients, volume(scenario), extended)
    notified = expected_consultations(patients, delivered, sessions, extended)[before.size:]
    browsing = sessions[before.size:] * (1.0 - patients.notified_session_share)
    consultations = rng["consultations"].poisson(notified)
    campaign_sessions_, campaigns = np.zeros(calendar.minutes, dtype=np.int64), {}
    for name, event in scenario.active_events().items():
        if isinstance(event, Campaign):
            added, campaigns[name] = campaign_sessions(event, volume(scenario), calendar, rng["campaigns"])
            campaign_sessions_ += added
    searches, views = patients.searches_per_session, patients.retrieves_per_session
    draw = rng["sessions"]
    counts[OPERATIONS.index("search"), patient] = (
        consultations + campaign_sessions_
        + draw.poisson(browsing * searches + (notified + campaign_sessions_) * (searches - 1.0)))
    counts[OPERATIONS.index("retrieve"), patient] = (
        consultations + draw.poisson(browsing * views + notified * max(views - 1.0, 0.0) + campaign_sessions_ * views))
    counts[OPERATIONS.index("history"), patient] = draw.poisson(
        (browsing + notified + campaign_sessions_) * patients.history_views_per_session)
    controls = {
        "deposit": patients.uploads_per_active_user_per_year,
        "mask": patients.masks_per_active_user_per_year,
        "delete": patients.deletes_per_active_user_per_year,
        "block": patients.blocks_per_active_user_per_year,
    }
    for operation, per_year in controls.items():
        counts[OPERATIONS.index(operation), patient] = rng["controls"].poisson(
            expected_activity(patients, per_year, volume(scenario), calendar))
    return consultations, campaigns


def _professional_reads(scenario: Scenario, calendar: Calendar, counts: np.ndarray, rng: np.random.Generator) -> None:
    for sector, searches in expected_visits(scenario, calendar).items():
        row = SECTORS.index(sector)
        counts[OPERATIONS.index("search"), row] = rng.poisson(searches)
        retrieves = searches * scenario.sectors[sector].visits.retrieves_per_search
        counts[OPERATIONS.index("retrieve"), row] = rng.poisson(retrieves)
