"""Turn a scenario's curves and activity profiles into per-day and per-minute factors.

Everything here is a pure function of (scenario piece, calendar) returning numpy arrays, so
the model modules can multiply factors together without loops over time.
"""

from __future__ import annotations

import numpy as np

from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.scenario import Adoption, Curve, Profile24, Seasonality

_DAYS_PER_YEAR = 365.25


def curve_per_day(curve: Curve | Adoption, calendar: Calendar) -> np.ndarray:
    """A dated curve evaluated on every day, shape (calendar.days,).

    Knots: linear between them, flat before the first, growing by ``growth_per_year`` after
    the last (up to ``cap``). An :class:`Adoption` S-curve: the logistic it describes.
    """
    day = np.arange(calendar.days, dtype=np.float64)
    if isinstance(curve, Adoption):
        width_days = curve.years_10_90 * _DAYS_PER_YEAR / (2.0 * np.log(9.0))
        position = (day - calendar.day_index(curve.midpoint)) / width_days
        return curve.floor + (curve.ceiling - curve.floor) / (1.0 + np.exp(-np.clip(position, -60, 60)))
    knot_days = np.array([calendar.day_index(d) for d in curve.knots], dtype=np.float64)
    values = np.array(list(curve.knots.values()), dtype=np.float64)
    result = np.interp(day, knot_days, values)
    if curve.growth_per_year:
        after = day > knot_days[-1]
        grown = values[-1] * (1.0 + curve.growth_per_year) ** ((day[after] - knot_days[-1]) / _DAYS_PER_YEAR)
        result[after] = grown if curve.cap is None else np.minimum(grown, max(curve.cap, values[-1]))
    return result


def intraday(profile: Profile24) -> np.ndarray:
    """Relative activity per minute of the day (mean 1), smooth across hour boundaries.

    Hourly weights are taken at the middle of each hour and interpolated linearly (wrapping
    around midnight), so the rate does not jump at the top of the hour.
    """
    hourly = np.asarray(profile.hourly, dtype=np.float64)
    hourly = hourly / hourly.mean()
    minutes = np.arange(MINUTES_PER_DAY) + 0.5
    centres = np.arange(-1, 25) * 60 + 30.0
    wrapped = np.concatenate([hourly[-1:], hourly, hourly[:1]])
    per_minute = np.interp(minutes, centres, wrapped)
    # keep each hour's total as the profile says (interpolation blurs it slightly)
    per_hour = per_minute.reshape(24, 60).mean(axis=1)
    per_minute = (per_minute.reshape(24, 60) * np.divide(hourly, per_hour, out=np.zeros(24), where=per_hour > 0)[:, None]).ravel()
    return per_minute / per_minute.mean()


def daily_activity(profile: Profile24, calendar: Calendar) -> np.ndarray:
    """Relative activity per day from the weekday profile and public holidays (mean 1 over a week)."""
    weekday = np.asarray(profile.weekday, dtype=np.float64)
    weekday = weekday / weekday.mean()
    per_day = weekday[calendar.weekday]
    return np.where(calendar.holiday, weekday[6] * profile.holiday, per_day)


def seasonal(seasonality: Seasonality, amplitude: float, calendar: Calendar) -> np.ndarray:
    """Relative activity per day from the monthly profile, interpolated between mid-months.

    ``amplitude`` scales the deviation from 1: a sector that barely follows epidemics uses < 1.
    """
    monthly = np.asarray(seasonality.monthly, dtype=np.float64)
    monthly = monthly / monthly.mean()
    centres = (np.arange(-1, 13) + 0.5) / 12.0
    wrapped = np.concatenate([monthly[-1:], monthly, monthly[:1]])
    factor = np.interp(calendar.day_of_year, centres, wrapped)
    factor = 1.0 + amplitude * (factor - 1.0)
    return np.where(calendar.christmas_week, factor * seasonality.christmas_week, factor)


def per_minute(daily: np.ndarray, minute_profile: np.ndarray) -> np.ndarray:
    """Spread a per-day total over its minutes with a mean-1 intraday profile: (days,) -> (days*1440,)."""
    return (daily[:, None] * (minute_profile / MINUTES_PER_DAY)[None, :]).ravel()
