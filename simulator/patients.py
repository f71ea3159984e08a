"""What patients do: read what was deposited for them, browse, upload, mask, delete, block.

Reads are *caused* by writes: a document deposited on an activated profile is opened by the
patient with a probability, after a lognormal delay (the notification arrives at once, the
patient looks when they can), at the hours patients use the app. The expected consultation
rate is the deposit series convolved with the delay distribution (an FFT over the whole
period), then shaped by the patients' hours of the day.
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


def active_users(patients: PatientUse, scale: float, calendar: Calendar) -> np.ndarray:
    return curve_per_day(patients.active_users, calendar) * scale


def active_deposit_share(patients: PatientUse, calendar: Calendar) -> np.ndarray:
    """Per day, the share of deposits that land on an activated profile."""
    share = patients.active_deposit_bias * curve_per_day(patients.active_users, calendar) / patients.profiles
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


def expected_consultations(patients: PatientUse, deposits: np.ndarray, calendar: Calendar) -> np.ndarray:
    """Expected consultations per minute caused by the delivered professional ``deposits`` per minute."""
    on_active = deposits * np.repeat(active_deposit_share(patients, calendar), MINUTES_PER_DAY)
    caused = _convolve(on_active * patients.consultation_probability, consultation_delay(patients))
    return _shape_by_hour(caused, intraday(patients.activity))


def expected_activity(patients: PatientUse, per_user_per_year: float, scale: float, calendar: Calendar) -> np.ndarray:
    """Expected actions per minute when each active user does ``per_user_per_year`` of them a year."""
    per_day = active_users(patients, scale, calendar) * per_user_per_year * MINUTES_PER_DAY / MINUTES_PER_YEAR
    return per_minute(per_day * daily_activity(patients.activity, calendar), intraday(patients.activity))
