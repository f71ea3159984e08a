"""A notification campaign: the CNAM writes to many insured people on one day, some of them connect.

(Prevention or activation campaigns of Mon espace santé reach millions of people at once: the
sessions they cause come as one wave, a few hours after the send, with a long tail.)

The notifications leave uniformly over ``send_hours`` hours from ``send_hour`` on the event's
date; a binomial share of the recipients answers, each after a lognormal delay truncated at
``max_days`` (the delay law is renormalised to the truncation, so every responder connects).
Responders are placed by one multinomial draw over a minute-level kernel, the uniform send
convolved with the delay: fast for a million responders. Nothing is lost: sessions that fall
outside the simulated period are counted before or after it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.scenario import Campaign


@dataclass
class CampaignOutcome:
    notified: int = 0       # people notified at this scale
    responders: int = 0     # of them, people who open a session because of it
    in_period: int = 0      # sessions inside the simulated period
    before_period: int = 0  # sessions before the period's first minute
    after_period: int = 0   # sessions after its last minute


def _delay_kernel(median_hours: float, sigma: float, max_days: int) -> np.ndarray:
    """Probability that a session opens k whole minutes after its notification, shape (max_days * 1440,).

    Lognormal (median ``median_hours``, ``sigma``), integrated minute by minute, truncated at
    ``max_days`` and renormalised to sum to 1.
    """
    edges = np.arange(max_days * MINUTES_PER_DAY + 1, dtype=np.float64)
    mu = math.log(median_hours * 60.0)
    with np.errstate(divide="ignore"):
        z = (np.log(edges) - mu) / (sigma * math.sqrt(2.0))  # -inf at 0
    cdf = 0.5 * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(z))
    kernel = np.diff(cdf)
    total = kernel.sum()
    if total <= 0.0:  # the whole law lies beyond max_days (absurdly long median): answer at the end
        kernel[-1] = 1.0
        return kernel
    return kernel / total


@lru_cache(maxsize=32)
def _offset_kernel(median_hours: float, sigma: float, max_days: int, send_minutes: int) -> np.ndarray:
    """Probability that a session opens k minutes after the first send minute, shape (send_minutes + delay - 1,).

    A uniform send over ``send_minutes`` minutes convolved with the delay kernel (a moving sum).
    Cached, read-only: it does not depend on the share that answers, and the assumption
    variants of a run (simulator.sensitivity) ask for the same few kernels again and again.
    """
    delay = _delay_kernel(median_hours, sigma, max_days)
    cumulative = np.concatenate(([0.0], np.cumsum(delay)))
    k = np.arange(delay.size + send_minutes - 1)
    upper = cumulative[np.minimum(k + 1, delay.size)]
    lower = cumulative[np.maximum(k - send_minutes + 1, 0)]
    kernel = np.clip(upper - lower, 0.0, None) / send_minutes
    kernel = kernel / kernel.sum()
    kernel.flags.writeable = False
    return kernel


def campaign_sessions(event: Campaign, volume: float, calendar: Calendar,
                      rng: np.random.Generator) -> tuple[np.ndarray, CampaignOutcome]:
    """Sessions caused by the campaign per minute, int64, shape (calendar.minutes,), and the accounting.

    ``volume`` is the scenario's scale x (1 + uplift). The event may lie partly or wholly
    outside the period: ``responders == in_period + before_period + after_period`` exactly.
    """
    sessions = np.zeros(calendar.minutes, dtype=np.int64)
    notified = int(round(event.notifications * volume))
    responders = int(rng.binomial(notified, event.response_curve.share)) if notified > 0 else 0
    outcome = CampaignOutcome(notified=notified, responders=responders)
    if responders == 0:
        return sessions, outcome

    curve = event.response_curve
    kernel = _offset_kernel(curve.median_hours, curve.sigma, curve.max_days, event.send_hours * 60)
    counts = rng.multinomial(responders, kernel)
    first = calendar.minute_index(dt.datetime.combine(event.date, dt.time(event.send_hour)))
    # counts[k] lands at minute first + k; the period is minutes [0, calendar.minutes)
    lo = min(max(-first, 0), counts.size)
    hi = min(max(calendar.minutes - first, 0), counts.size)
    hi = max(hi, lo)
    sessions[first + lo:first + hi] = counts[lo:hi]
    outcome.before_period = int(counts[:lo].sum())
    outcome.in_period = int(counts[lo:hi].sum())
    outcome.after_period = int(counts[hi:].sum())
    return sessions, outcome
