"""Outage what-if: with the measured capacity, how long the backlog of a D-hour outage takes to drain.

The simulator's outage model (connectors queue, retry with back-off, then drain at their own
pace; people retry a few times) is run at national scale for an outage of D hours starting at
the plan's window, and the traffic that reaches the platform after the recovery is put through
a queue served at the service's measured national capacity (requests per second, fluid model:
what arrives beyond the capacity in a minute waits for the next). The backlog is drained when
the connectors have sent their queues and that queue is empty again.

This module computes; :mod:`planner.recovery` then replays the busiest stretch of the surge
(``surge_window``) against the service, which settles ``surge_holds``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from simulator.engine import OPERATIONS, simulate
from simulator.scenario import PROFESSIONAL_SECTORS, SECTORS, Scenario

DEFAULT_HOURS = 1.0
_HORIZON_DAYS = 2  # simulated after the outage's day: enough for any drain a plan would accept


def scenario_outage_hours(scenario: Scenario) -> float | None:
    """The duration of the scenario's own (first active) outage, in hours, if it has one."""
    for event in scenario.active_events().values():
        if getattr(event, "kind", None) == "outage":
            return event.duration_minutes / 60.0
    return None


def without_outages(scenario: Scenario) -> Scenario:
    """The scenario with its own outages left out (a what-if puts its own, or none)."""
    data = scenario.model_dump()
    data["events"] = {name: event for name, event in data["events"].items() if event["kind"] != "outage"}
    return Scenario.model_validate(data)


def with_outage(scenario: Scenario, start: dt.datetime, hours: float | None, scale: float = 1.0) -> Scenario:
    """The scenario with only the what-if's outage (``hours`` long from ``start``; none when falsy), simulated
    from the outage's day for a few days, at ``scale`` (1.0: the nation)."""
    data = without_outages(scenario).model_dump()
    if hours:
        data["events"]["plan-outage"] = {"kind": "outage", "start": start, "duration_minutes": max(1, round(hours * 60))}
    data["period"] = {"start": start.date(), "end": start.date() + dt.timedelta(days=_HORIZON_DAYS)}
    data["scale"] = scale
    return Scenario.model_validate(data)


def _busiest(arrivals: np.ndarray, first: int, last: int, minutes: int) -> int:
    """The first minute of the busiest ``minutes``-long stretch starting in [first, last]."""
    last = max(first, min(last, arrivals.size - minutes))
    sums = np.convolve(arrivals[first:last + minutes], np.ones(minutes), mode="valid")
    return first + int(np.argmax(sums[: last - first + 1]))


def outage_drain(scenario: Scenario, start: dt.datetime, hours: float, capacity_rps: float,
                 window_minutes: int = 10) -> dict:
    """{outage_hours, backlog_documents, drain_minutes, surge_holds, surge_window, …} for a national outage at ``start``.

    ``capacity_rps``: the service's measured capacity in national requests per second (0 when
    nothing held). ``drain_minutes`` is None when the backlog does not drain within the
    simulated horizon (two days after the outage's day); ``surge_holds`` says whether the
    traffic after the recovery stays under the capacity in every minute (fluid model; the
    replay of :mod:`planner.recovery` replaces it). ``surge_window`` ({start, minutes}) is the
    busiest ``window_minutes`` of the surge (from the recovery to an hour after the connectors
    have sent their queues), the stretch to replay.
    """
    normal = simulate(with_outage(scenario, start, None))
    disrupted = simulate(with_outage(scenario, start, hours))
    outcome = next(iter(disrupted.ledger.outages.values()))
    first, down = outcome.first_minute, outcome.down_minutes
    professional = [SECTORS.index(s) for s in PROFESSIONAL_SECTORS]
    deposits = normal.counts[OPERATIONS.index("deposit"), professional][:, first:first + down]
    arrivals = disrupted.counts.sum(axis=(0, 1)).astype(np.float64)
    recovery = first + down
    served_per_minute = capacity_rps * 60.0
    queue, drained_at, peak = 0.0, None, 0.0
    connectors_done = recovery + outcome.recovery_minutes
    for minute in range(recovery, arrivals.size):
        peak = max(peak, arrivals[minute] / 60.0) if minute <= connectors_done + 60 else peak
        queue = max(0.0, queue + arrivals[minute] - served_per_minute)
        if minute >= connectors_done and queue == 0.0:
            drained_at = minute
            break
    surge_first = _busiest(arrivals, recovery, connectors_done + 60, window_minutes)
    return {
        "outage_hours": hours,
        "start": start.isoformat(),
        "backlog_documents": int(deposits.sum()),
        "refused_reads_and_actions": int(sum(disrupted.refused_during_outage.values())),
        "drain_minutes": None if drained_at is None else drained_at - recovery,
        "connectors_drain_minutes": outcome.recovery_minutes,
        "surge_peak_rps": round(float(peak), 1),
        "capacity_rps": round(capacity_rps, 1),
        "surge_holds": bool(capacity_rps > 0 and peak <= capacity_rps),
        "recovered_at": disrupted.calendar.moment(recovery).isoformat(),
        "surge_window": {"start": disrupted.calendar.moment(surge_first).isoformat(),
                         "minutes": window_minutes,
                         "national_rps": round(float(arrivals[surge_first:surge_first + window_minutes].mean()) / 60.0, 1)},
    }
