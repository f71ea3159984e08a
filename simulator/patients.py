"""What patients do: connect, read what was deposited for them, browse, upload, mask, delete, block.

The volume of patient reads is the published usage: the people who connect in a month (CNAM:
about 2.5 M a month in 2025-2026), times their sessions, times the requests of a session (a
document list, document views). Part of those sessions follow a deposit notification: their
timing is *caused* by writes. A document deposited on an activated profile triggers a
notification; the patient looks after a lognormal delay, at the hours patients use the app.
The shape of those sessions in time is the deposit series convolved with the delay (an FFT
over the whole period); their number is the notified share of the sessions (a 28-day moving
ratio), so a burst of deposits gives a burst of consultations without changing the monthly
usage. What share of documents patients open follows from that (summary.json says it).
"""

from __future__ import annotations

import numpy as np

from simulator.calendar import MINUTES_PER_DAY, Calendar
from simulator.profiles import curve_per_day, daily_activity, intraday, per_minute
from simulator.scenario import PatientUse

MINUTES_PER_YEAR = 365.25 * MINUTES_PER_DAY


def consultation_delay(patients: PatientUse) -> np.ndarray:
    """Probability that a consultation happens k minutes after the deposit (lognormal, truncated)."""
    minutes = np.arange(patients.consultation_delay_max_days * MINUTES_PER_DAY, dtype=np.float64) + 0.5
    mu = np.log(patients.consultation_delay_median_hours * 60.0)
    sigma = patients.consultation_delay_sigma
    density = np.exp(-((np.log(minutes) - mu) ** 2) / (2 * sigma**2)) / minutes
    return density / density.sum()


def _activated(patients: PatientUse, calendar: Calendar) -> np.ndarray:
    """Activated profiles per day (national), never more than the profiles that exist."""
    return np.minimum(curve_per_day(patients.active_users, calendar), patients.profiles * (1 - patients.opposition_rate))


def active_users(patients: PatientUse, scale: float, calendar: Calendar) -> np.ndarray:
    return _activated(patients, calendar) * scale


def active_deposit_share(patients: PatientUse, calendar: Calendar) -> np.ndarray:
    """Per day, the share of deposits that land on an activated profile."""
    share = patients.active_deposit_bias * _activated(patients, calendar) / patients.profiles
    return np.clip(share, 0.0, 1.0)


def _convolve(series: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    size = series.size + kernel.size - 1
    fft_size = 1 << (size - 1).bit_length()
    result = np.fft.irfft(np.fft.rfft(series, fft_size) * np.fft.rfft(kernel, fft_size), fft_size)[:series.size]
    return np.clip(result, 0.0, None)


def _shape_by_hour(rate: np.ndarray, minute_profile: np.ndarray) -> np.ndarray:
    """Redistribute each day's total over the patients' hours (the daily total is kept)."""
    days = rate.reshape(-1, MINUTES_PER_DAY)
    shaped = days * minute_profile[None, :]
    totals, shaped_totals = days.sum(axis=1), shaped.sum(axis=1)
    factor = np.divide(totals, shaped_totals, out=np.zeros_like(totals), where=shaped_totals > 0)
    return (shaped * factor[:, None]).ravel()


_DAYS_PER_MONTH = 365.25 / 12
_RATIO_DAYS = 28


def expected_sessions(patients: PatientUse, volume: float, calendar: Calendar) -> np.ndarray:
    """Expected patient sessions per minute, shape (calendar.minutes,): connecting people x sessions each.

    ``volume`` is the scenario's scale x (1 + uplift).
    """
    per_day = (curve_per_day(patients.connecting_users, calendar) * volume
               * patients.sessions_per_connecting_user_per_month / _DAYS_PER_MONTH)
    return per_minute(per_day * daily_activity(patients.activity, calendar), intraday(patients.activity))


def _moving_sum(daily: np.ndarray, days: int) -> np.ndarray:
    """Centred moving sum over ``days`` days (shorter at the ends)."""
    cumulative = np.concatenate([[0.0], np.cumsum(daily)])
    index = np.arange(daily.size)
    low = np.clip(index - days // 2, 0, daily.size)
    high = np.clip(index + days - days // 2, 0, daily.size)
    return cumulative[high] - cumulative[low]


def expected_consultations(patients: PatientUse, deposits: np.ndarray, sessions: np.ndarray,
                           calendar: Calendar) -> np.ndarray:
    """Expected notified sessions per minute, shape (calendar.minutes,).

    ``deposits``: delivered professional deposits per minute; ``sessions``: expected sessions
    per minute (:func:`expected_sessions`). Timed by the deposits (notification, then the
    delay), numbered by the notified share of ``sessions`` over a 28-day moving window.
    """
    on_active = deposits * np.repeat(active_deposit_share(patients, calendar), MINUTES_PER_DAY)
    shape = _shape_by_hour(_convolve(on_active, consultation_delay(patients)), intraday(patients.activity))
    shape_daily = _moving_sum(shape.reshape(-1, MINUTES_PER_DAY).sum(axis=1), _RATIO_DAYS)
    wanted_daily = _moving_sum(sessions.reshape(-1, MINUTES_PER_DAY).sum(axis=1), _RATIO_DAYS)
    factor = np.divide(wanted_daily * patients.notified_session_share, shape_daily,
                       out=np.zeros_like(shape_daily), where=shape_daily > 0)
    return shape * np.repeat(factor, MINUTES_PER_DAY)


def expected_activity(patients: PatientUse, per_user_per_year: float, volume: float, calendar: Calendar) -> np.ndarray:
    """Expected actions per minute when each activated profile does ``per_user_per_year`` of them a year."""
    per_day = active_users(patients, volume, calendar) * per_user_per_year * MINUTES_PER_DAY / MINUTES_PER_YEAR
    return per_minute(per_day * daily_activity(patients.activity, calendar), intraday(patients.activity))
