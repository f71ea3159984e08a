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
from typing import Callable

import numpy as np

from simulator.batching import send_in_batches
from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.outage import OutageOutcome, apply_outage
from simulator.patients import expected_activity, expected_consultations
from simulator.production import expected_deposits, expected_visits
from simulator.profiles import intraday
from simulator.scenario import PROFESSIONAL_SECTORS, SECTORS, LabStrike, Outage, Scenario
from simulator.strike import StrikeOutcome, apply_strike

OPERATIONS = ("deposit", "search", "retrieve", "mask", "delete", "block")
READS = ("search", "retrieve")

_STREAMS = ("deposits", "strikes", "outages", "consultations", "sessions", "controls", "visits", "batches")


@dataclass
class DepositLedger:
    """Where every professional document sent (or meant to be sent) to the DMP went."""

    produced: int = 0            # documents the producers meant to send in the period
    delivered: int = 0           # accepted by the platform within the period
    never_sent: int = 0          # withheld during a strike and never caught up
    pending_at_end: int = 0      # still queued (retrying, or in a catch-up) when the period ends
    strikes: dict[str, StrikeOutcome] = field(default_factory=dict)
    outages: dict[str, OutageOutcome] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.produced == self.delivered + self.never_sent + self.pending_at_end


@dataclass
class Traffic:
    """Operations per (operation, sector, minute) that reached the platform, plus the accounts."""

    scenario: Scenario
    calendar: Calendar
    counts: np.ndarray  # int64, shape (len(OPERATIONS), len(SECTORS), calendar.minutes)
    ledger: DepositLedger
    platform_down: np.ndarray  # bool per minute
    refused_during_outage: dict[str, int]  # reads and patient actions that failed and were not retried
    consultations: np.ndarray  # per minute: the patient searches caused by a deposit (part of patient searches)

    @cached_property
    def daily(self) -> np.ndarray:
        """(operations, sectors, days): computed once, read by the CSV, the summary and the plots."""
        ops, sectors, minutes = self.counts.shape
        return self.counts.reshape(ops, sectors, minutes // MINUTES_PER_DAY, MINUTES_PER_DAY).sum(axis=3)

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
    for sector, series in deposits.items():
        batching = scenario.sectors[sector].batching
        if batching is not None and batching.share > 0:
            deposits[sector], waiting = send_in_batches(series, batching.share, batching.interval_minutes,
                                                        rng["batches"])
            ledger.pending_at_end += waiting

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
    producers = {s: (max(1, round(sector.producers * scenario.scale)), sector.size_sigma)
                 for s, sector in scenario.sectors.items()}
    for name, event in events.items():
        if isinstance(event, Outage):
            outcome = apply_outage(event, deposits, expected, producers, calendar, rng["outages"])
            ledger.outages[name] = outcome
            ledger.pending_at_end += outcome.pending_at_end
            begin = max(outcome.first_minute, 0)
            platform_down[begin:begin + outcome.down_minutes] = True
    for sector, series in deposits.items():
        counts[OPERATIONS.index("deposit"), SECTORS.index(sector)] = series
    ledger.delivered = int(sum(d.sum() for d in deposits.values()))

    progress("patients")
    before = np.sum([extended_expected[s][:warmup] for s in PROFESSIONAL_SECTORS], axis=0)
    consultations = _patients(scenario, extended, before, deposits, counts, rng)
    progress("professional consultations")
    _professional_reads(scenario, calendar, counts, rng["visits"])

    refused = {}
    down = np.flatnonzero(platform_down)
    if down.size:
        for row, operation in enumerate(OPERATIONS):
            # professional deposits were queued and retried above; everything else is refused
            rows = [SECTORS.index("patient")] if operation == "deposit" else list(range(len(SECTORS)))
            refused[operation] = int(counts[row][np.ix_(rows, down)].sum())
            counts[row][np.ix_(rows, down)] = 0
        consultations[down] = 0
    return Traffic(scenario, calendar, counts, ledger, platform_down, refused, consultations)


def _patients(scenario: Scenario, extended: Calendar, before: np.ndarray, deposits: dict[str, np.ndarray],
              counts: np.ndarray, rng: dict[str, np.random.Generator]) -> np.ndarray:
    """Patient traffic; ``extended`` starts ``before.size`` minutes (of expected deposits) before the period."""
    patients, scale = scenario.patients, scenario.scale
    patient = SECTORS.index("patient")
    calendar = Calendar(scenario.period.start, scenario.period.end)
    delivered = np.concatenate([before, np.sum([deposits[s] for s in PROFESSIONAL_SECTORS], axis=0)])
    caused = expected_consultations(patients, delivered, extended)[before.size:]
    consultations = rng["consultations"].poisson(caused)
    sessions = expected_activity(patients, patients.sessions_per_active_user_per_month * 12, scale, calendar)
    browsing = rng["sessions"].poisson(sessions)
    counts[OPERATIONS.index("search"), patient] = consultations + browsing
    counts[OPERATIONS.index("retrieve"), patient] = consultations + rng["sessions"].poisson(
        sessions * patients.retrieves_per_session)
    controls = {
        "deposit": patients.uploads_per_active_user_per_year,
        "mask": patients.masks_per_active_user_per_year,
        "delete": patients.deletes_per_active_user_per_year,
        "block": patients.blocks_per_active_user_per_year,
    }
    for operation, per_year in controls.items():
        counts[OPERATIONS.index(operation), patient] = rng["controls"].poisson(
            expected_activity(patients, per_year, scale, calendar))
    return consultations


def _professional_reads(scenario: Scenario, calendar: Calendar, counts: np.ndarray, rng: np.random.Generator) -> None:
    for sector, searches in expected_visits(scenario, calendar).items():
        row = SECTORS.index(sector)
        counts[OPERATIONS.index("search"), row] = rng.poisson(searches)
        retrieves = searches * scenario.sectors[sector].visits.retrieves_per_search
        counts[OPERATIONS.index("retrieve"), row] = rng.poisson(retrieves)
