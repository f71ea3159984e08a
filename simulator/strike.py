"""A strike of producers: documents are withheld, some sent in a catch-up wave afterwards.

(November 2024: a strike of medical biologists slowed the flows into Mon espace santé.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.scenario import LabStrike


@dataclass
class StrikeOutcome:
    withheld: int = 0
    delivered_later: int = 0
    never_sent: int = 0
    pending_at_end: int = 0


def apply_strike(event: LabStrike, deposits: np.ndarray, minute_profile: np.ndarray, calendar: Calendar,
                 rng: np.random.Generator) -> StrikeOutcome:
    """Withhold part of one sector's deposits (changed in place) and send part of them later.

    The catch-up is front-loaded (an exponential decay over ``catch_up_days``) and follows the
    sector's usual hours: a lab that resumes sends its backlog during its working day.
    """
    first_day = max(calendar.day_index(event.start), 0)
    last_day = min(calendar.day_index(event.end), calendar.days - 1)
    outcome = StrikeOutcome()
    if last_day < first_day:
        return outcome
    during = slice(first_day * MINUTES_PER_DAY, (last_day + 1) * MINUTES_PER_DAY)
    withheld = rng.binomial(deposits[during], event.withheld_share)
    deposits[during] -= withheld
    outcome.withheld = int(withheld.sum())
    later = int(rng.binomial(outcome.withheld, event.delivered_later_share))
    outcome.never_sent = outcome.withheld - later

    days = np.arange(event.catch_up_days, dtype=np.float64)
    daily_weight = np.exp(-days / max(event.catch_up_days / 3.0, 1.0))
    weights = (daily_weight[:, None] * minute_profile[None, :]).ravel()
    spread = rng.multinomial(later, weights / weights.sum())
    begin = (last_day + 1) * MINUTES_PER_DAY
    inside = max(0, min(spread.size, deposits.size - begin))
    deposits[begin:begin + inside] += spread[:inside]
    outcome.delivered_later = int(spread[:inside].sum())
    outcome.pending_at_end = later - outcome.delivered_later
    return outcome
