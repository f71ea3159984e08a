"""A platform outage and what producers' connectors do about it: queue, retry, flood back.

This is where SimPy earns its place. Volume stays in numpy (documents per minute), but the
structure is made of processes: the :class:`Platform` goes down and comes back; each
:class:`Connector` (one large producer, or a group of small ones) sees its first deposit
refused, backs off exponentially with jitter, and when an attempt finally succeeds drains its
backlog at a bounded speed while new documents keep arriving behind it. Thousands of
connectors with their own back-off phases make the realistic burst after recovery.

Nothing is dropped: every document produced is either delivered or still pending at the end of
the simulated period, and :class:`OutageOutcome` accounts for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from simulator.calendar import Calendar
from simulator.scenario import Outage, RetryPolicy


class Platform:
    """The record service as producers see it: up, or down for a while."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.up = True

    def outage(self, start: float, duration: float):
        yield self.env.timeout(start)
        self.up = False
        yield self.env.timeout(duration)
        self.up = True


class Connector:
    """The sending software of one producer (or group of producers), from the outage onwards.

    ``produced[m]`` documents are ready at minute ``m`` (relative to the outage start); the
    connector writes what the platform accepted into ``delivered`` and keeps the rest queued.
    """

    def __init__(self, env: simpy.Environment, platform: Platform, produced: np.ndarray, delivered: np.ndarray,
                 drain_per_minute: float, retry: RetryPolicy, jitter: np.ndarray):
        self.env, self.platform = env, platform
        self.produced, self.delivered = produced, delivered
        self.drain_per_minute = max(drain_per_minute, 1.0)
        self.retry, self.jitter = retry, jitter
        self.backlog = 0
        self.drained_at: int | None = None  # minute its queue was empty again (None: it never queued)

    def _backoff(self, attempt: int) -> float:
        delay_s = min(self.retry.first_delay_s * self.retry.multiplier ** attempt, self.retry.max_delay_s)
        return delay_s / 60.0 * (1.0 + self.retry.jitter * self.jitter[attempt % self.jitter.size])

    def run(self):
        ready = np.flatnonzero(self.produced)
        if ready.size == 0:
            return
        first_failure = int(ready[0])
        # what came before the first refused deposit went through normally
        self.delivered[:first_failure] = self.produced[:first_failure]
        yield self.env.timeout(first_failure)
        if self.platform.up:  # its first document came after the recovery: nothing was refused
            self.delivered[first_failure:] = self.produced[first_failure:]
            return
        attempt = 0
        while True:
            yield self.env.timeout(self._backoff(attempt))
            attempt += 1
            if self.platform.up:
                break
        minute = int(self.env.now)
        if minute >= self.produced.size:
            self.backlog = int(self.produced[first_failure:].sum())
            return
        self.backlog = int(self.produced[first_failure:minute + 1].sum())
        yield from self._drain(minute)

    def _drain(self, minute: int):
        """Send the backlog at the connector's top speed, one minute at a time, then run normally."""
        capacity = int(self.drain_per_minute)
        while minute < self.produced.size:
            sent = min(self.backlog, capacity)
            self.delivered[minute] += sent
            self.backlog -= sent
            minute += 1
            if self.backlog == 0:
                break
            if minute < self.produced.size:
                self.backlog += int(self.produced[minute])
            yield self.env.timeout(1)
        if self.backlog == 0:
            self.drained_at = minute
        if minute < self.produced.size:
            self.delivered[minute:] += self.produced[minute:]


@dataclass
class OutageOutcome:
    produced: int = 0
    delivered: int = 0
    pending_at_end: int = 0
    first_minute: int = 0
    down_minutes: int = 0
    connectors: int = 0
    recovery_minutes: int = 0  # from recovery until the last connector's queue was empty (not its next quiet wake-up)


def _connector_shares(producers: int, size_sigma: float, groups: int, rng: np.random.Generator) -> np.ndarray:
    """Volume shares of the connectors: the largest producers alone, the long tail grouped by rank."""
    weights = np.sort(rng.lognormal(0.0, size_sigma, producers))[::-1]
    if producers <= groups:
        shares = weights
    else:
        alone = groups // 2
        tail = np.array_split(weights[alone:], groups - alone)
        shares = np.concatenate([weights[:alone], [chunk.sum() for chunk in tail]])
    return shares / shares.sum()


def horizon_minutes(event: Outage) -> int:
    """How long after the outage start the backlog may still be draining (generous)."""
    retry = event.retry
    drain = event.duration_minutes / (retry.drain_speedup - 1.0)
    return int(event.duration_minutes + 2 * drain + 4 * retry.max_delay_s / 60.0 + 120)


def apply_outage(event: Outage, deposits: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                 producers: dict[str, tuple[int, float]], calendar: Calendar,
                 rng: np.random.Generator) -> OutageOutcome:
    """Replace each sector's deposits after the outage start by what the connectors delivered (in place).

    ``producers`` gives, per sector, the number of producers and the spread of their sizes.
    """
    start = calendar.minute_index(event.start)
    outcome = OutageOutcome(first_minute=start)
    if start >= calendar.minutes or start + event.duration_minutes <= 0:
        return outcome
    start = max(start, 0)
    end = min(start + horizon_minutes(event), calendar.minutes)
    outcome.down_minutes = min(event.duration_minutes, calendar.minutes - start)

    env = simpy.Environment()
    platform = Platform(env)
    env.process(platform.outage(0, event.duration_minutes))
    per_sector: dict[str, tuple[np.ndarray, list[Connector]]] = {}
    for sector, series in deposits.items():
        count, size_sigma = producers[sector]
        shares = _connector_shares(count, size_sigma, event.retry_groups_per_sector, rng)
        per_connector = rng.multinomial(series[start:end], shares)  # (minutes, connectors)
        delivered = np.zeros_like(per_connector)
        mean_rate = float(expected[sector][start:end].mean())
        connectors = []
        for index, share in enumerate(shares):
            connector = Connector(env, platform, per_connector[:, index], delivered[:, index],
                                  event.retry.drain_speedup * mean_rate * share, event.retry,
                                  jitter=rng.uniform(-1.0, 1.0, 16))
            env.process(connector.run())
            connectors.append(connector)
        per_sector[sector] = (delivered, connectors)
        outcome.produced += int(per_connector.sum())
    env.run()

    for sector, (delivered, connectors) in per_sector.items():
        deposits[sector][start:end] = delivered.sum(axis=1)
        outcome.delivered += int(delivered.sum())
        outcome.pending_at_end += sum(c.backlog for c in connectors)
        outcome.connectors += len(connectors)
    drained = [c.drained_at for _, connectors in per_sector.values() for c in connectors if c.drained_at is not None]
    outcome.recovery_minutes = max(0, max(drained, default=outcome.down_minutes) - outcome.down_minutes)
    return outcome
