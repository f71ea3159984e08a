"""Connectors that send in batches: documents wait for the next clock boundary, then go together.

Many producers' software exports on a timer (a lab system every quarter of an hour, a hospital
interface engine every half hour), so the platform sees spikes at :00, :15, :30, :45 on top
of the smooth flow. Hourly averages hide them; a service's queues do not.
"""

from __future__ import annotations

import numpy as np


def send_in_batches(deposits: np.ndarray, share: float, interval_minutes: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray]:
    """Hold ``share`` of each minute's documents until the next multiple of ``interval_minutes``.

    ``deposits``: documents ready per minute, shape (minutes,). Returns the documents sent per
    minute, those still waiting when the period ends (sent at the first boundary after it), and
    the batch flushes per minute (part of the first array: they leave on the boundary's first
    seconds, see :attr:`simulator.engine.Traffic.flushed`).
    """
    batched = rng.binomial(deposits, share)
    sent = deposits - batched
    per_interval = np.add.reduceat(batched, np.arange(0, deposits.size, interval_minutes))
    flush = np.arange(1, per_interval.size + 1) * interval_minutes  # the boundary that ends each interval
    inside = flush < deposits.size
    sent[flush[inside]] += per_interval[inside]
    flushes = np.zeros_like(deposits)
    flushes[flush[inside]] = per_interval[inside]
    return sent, int(per_interval[~inside].sum()), flushes
