"""How many documents each professional sector produces, and how many it sends to the DMP.

Expected rates only (documents per minute); the engine draws the actual counts. A sector's
rate is the product of independent factors, each one a plain array over days:

    producers x documents/producer/day x growth x seasonality x weekday/holiday x epidemic
        x share sent to the DMP (ramping with the Ségur waves and the 2026 obligation)

spread over the minutes of each day with the sector's hourly profile.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from simulator.calendar import Calendar
from simulator.profiles import curve_per_day, daily_activity, intraday, per_minute, seasonal
from simulator.scenario import Epidemic, Obligation, Scenario, Sector


def volume(scenario: Scenario) -> float:
    """What every expected national rate is multiplied by: the scale (populations) x (1 + uplift)."""
    return scenario.scale * (1.0 + scenario.uplift)


def _obligation_floor(scenario: Scenario, sector_name: str, calendar: Calendar, share: np.ndarray,
                      floor_of: Callable[[Obligation], float | None],
                      sectors_of: Callable[[Obligation], list[str]]) -> np.ndarray:
    """``share`` lifted towards each obligation's floor over its ramp (never lowered)."""
    day = np.arange(calendar.days, dtype=np.float64)
    for event in scenario.active_events().values():
        if not isinstance(event, Obligation) or sector_name not in sectors_of(event) or floor_of(event) is None:
            continue
        progress = np.clip((day - calendar.day_index(event.date) + 1) / max(event.ramp_days, 1), 0, 1)
        share = share + np.clip(floor_of(event) - share, 0, None) * progress
    return np.clip(share, 0.0, 1.0)


def epidemic_factor(scenario: Scenario, sector_name: str, calendar: Calendar) -> np.ndarray:
    """Per-day multiplier of care activity from epidemic waves (triangular: start, peak, end)."""
    factor = np.ones(calendar.days)
    day = np.arange(calendar.days, dtype=np.float64)
    for event in scenario.active_events().values():
        if not isinstance(event, Epidemic) or sector_name not in event.sectors:
            continue
        start, peak, end = (calendar.day_index(d) for d in (event.start, event.peak, event.end))
        rising = np.clip((day - start) / max(peak - start, 1), 0, 1)
        falling = np.clip((end - day) / max(end - peak, 1), 0, 1)
        factor += event.amplitude * np.where(day <= peak, rising, falling) * ((day >= start) & (day <= end))
    return factor


def share_sent(scenario: Scenario, sector_name: str, sector: Sector, calendar: Calendar) -> np.ndarray:
    """Per-day share of produced documents sent to the DMP, with obligations lifting it to a floor."""
    return _obligation_floor(scenario, sector_name, calendar, curve_per_day(sector.dmp_share, calendar),
                             lambda event: event.dmp_share, lambda event: event.sectors)


def search_share(scenario: Scenario, sector_name: str, sector: Sector, calendar: Calendar) -> np.ndarray:
    """Per-day share of care contacts that search the DMP, with an obligation to consult as a floor."""
    return _obligation_floor(scenario, sector_name, calendar, curve_per_day(sector.visits.dmp_search_share, calendar),
                             lambda event: event.consultation_share, lambda event: event.consultation_sectors)


def care_activity_per_day(scenario: Scenario, sector_name: str, sector: Sector, calendar: Calendar) -> np.ndarray:
    """Relative care activity per day (mean ~1): seasons, weekdays, holidays, epidemics, growth."""
    growth = (1.0 + scenario.growth.production_per_year) ** calendar.years_since(scenario.growth.reference_date)
    return (growth * seasonal(scenario.seasonality, sector.seasonal_amplitude, calendar)
            * daily_activity(sector.activity, calendar) * epidemic_factor(scenario, sector_name, calendar))


def deposits_per_day(scenario: Scenario, calendar: Calendar, volume: float = 1.0) -> dict[str, np.ndarray]:
    """Documents sent to the DMP per day, expected, per professional sector (no disruption applied).

    ``volume`` multiplies them (a run's scale x (1 + uplift)); 1.0 gives the national counts
    that tools/fit_adoption.py sets against the published figures.
    """
    return {name: (sector.producers * volume * sector.documents_per_producer_per_day
                   * care_activity_per_day(scenario, name, sector, calendar)
                   * share_sent(scenario, name, sector, calendar))
            for name, sector in scenario.sectors.items()}


def expected_deposits(scenario: Scenario, calendar: Calendar) -> dict[str, np.ndarray]:
    """Documents sent to the DMP per minute, expected, per professional sector (no disruption applied)."""
    return {name: per_minute(sent_per_day, intraday(scenario.sectors[name].activity))
            for name, sent_per_day in deposits_per_day(scenario, calendar, volume(scenario)).items()}


def expected_visits(scenario: Scenario, calendar: Calendar) -> dict[str, np.ndarray]:
    """Professional searches of the DMP per minute, expected, per sector (care contacts x search share)."""
    rates = {}
    for name, sector in scenario.sectors.items():
        contacts_per_day = (sector.producers * volume(scenario) * sector.visits.per_producer_per_day
                            * care_activity_per_day(scenario, name, sector, calendar))
        searches_per_day = contacts_per_day * search_share(scenario, name, sector, calendar)
        rates[name] = per_minute(searches_per_day, intraday(sector.activity))
    return rates
