"""Published figures the simulator is calibrated on, and how to read each one off a run.

Each :class:`Figure` is one public point (shared/reference/published-figures.md and the sources
named in each row), with the tolerance the model must meet and why. ``unit`` is ``"share"`` for
a fraction (0-1, tolerance in absolute points of it) and anything else for a count or a ratio
(tolerance relative). A figure is read from daily counts per (operation, sector): drawn counts
for ``summary.json``, expected ones for tools/fit_adoption.py. Points outside the simulated
period are left out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import numpy as np

from simulator.calendar import Calendar
from simulator.profiles import curve_per_day
from simulator.scenario import PROFESSIONAL_SECTORS, Scenario

_ANS_2023 = "DNS at the 8th Ségur follow-up committee (13 Sep 2023), biologiste365.fr 21 Sep 2023 and dsih.fr/articles/5252"
_ANS_SUMMER = "ANS, 7 Sep 2023, via L'Usine Digitale: 'chaque mois, plus de 12 millions de documents'"
_KPS_2023 = "ANS monthly report of December 2023 quoted by Klesia Pro Social, 6 Feb 2024 (press paraphrase)"
_SEGUR_2024 = "esante.gouv.fr, Ségur transparency page (2024 full year, by type)"
_CNAM_2026 = "CNAM / DNS press conference, 29 Jan 2026 (press summaries)"


@dataclass(frozen=True)
class Figure:
    """One published point: ``measure`` says how the model's value is read (see :func:`model_value`)."""

    what: str
    period: str          # YYYY, YYYY-MM, YYYY-MM..YYYY-MM, YYYY-MM/YYYY-MM (a ratio) or YYYY-MM-DD (a curve)
    unit: str
    published: float
    tolerance: float
    source: str
    measure: str = "count"          # count | share | ratio | curve
    operation: str = "deposit"
    sectors: tuple[str, ...] = PROFESSIONAL_SECTORS
    type_code: str | None = None    # a document type (LOINC) inside those sectors
    curve: str | None = None        # for measure "curve": patients.<name>
    per_month: bool = False         # the mean per month over the period, not its total


def _deposits(what, period, published, tolerance, source, **kw) -> Figure:
    return Figure(what, period, "documents", published, tolerance, source, **kw)


def _share(sector: str, period: str, published: float, source: str) -> Figure:
    return Figure(f"share of deposits from {sector}", period, "share", published, 0.04, source,
                  measure="share", sectors=(sector,))


DEPOSIT_FIGURES = (
    _deposits("professional deposits (annual rate 147 M / 12)", "2023-06", 12.25e6, 0.10, _ANS_2023 + "; ±10 %: a rate read off a slide"),
    _deposits("professional deposits (annual rate 150 M / 12)", "2023-07", 12.5e6, 0.10, _ANS_2023 + "; ±10 %: a rate read off a slide"),
    _deposits("professional deposits (annual rate 142 M / 12)", "2023-08", 11.83e6, 0.10, _ANS_2023 + "; ±10 %: a rate read off a slide"),
    _deposits("professional deposits", "2023-10", 16e6, 0.10, "H. Ghariani (DNS), Alliancy interview; ±10 %: an interview figure"),
    _deposits("professional deposits (> 19 M)", "2023-12", 19.5e6, 0.08, "ANS, Rencontres de l'officine Jan 2024, Le Moniteur des pharmacies; a lower bound"),
    _share("lab", "2023-12", 0.37, _KPS_2023),
    _share("town_doctor", "2023-12", 0.35, _KPS_2023),
    _share("hospital", "2023-12", 0.17, _KPS_2023),
    _share("imaging", "2023-12", 0.08, _KPS_2023),
    _share("pharmacy", "2023-12", 0.03, _KPS_2023),
    _deposits("professional deposits (> 300 M)", "2024", 305e6, 0.05, _SEGUR_2024 + "; a lower bound, read as 300-320 M"),
    _deposits("biology reports (11502-2)", "2024", 117e6, 0.05, _SEGUR_2024, type_code="11502-2"),
    _deposits("drug prescriptions (57833-6)", "2024", 69e6, 0.05, _SEGUR_2024, type_code="57833-6"),
    _deposits("imaging reports (18748-4)", "2024", 26e6, 0.05, _SEGUR_2024, type_code="18748-4"),
    _deposits("professional deposits (> 30 M)", "2024-10", 31e6, 0.05, "Ségur programme: > 30 M in October 2024, and +40 % to October 2025"),
    _deposits("professional deposits", "2025", 420e6, 0.05, _CNAM_2026 + ": ≈ 420 M (+40 %)"),
    Figure("share of deposits that are biology reports", "2025", "share", 0.40, 0.03, _CNAM_2026 + ": biology ≈ 40 %",
           measure="share", sectors=("lab",)),
    _deposits("professional deposits", "2025-10", 42.8e6, 0.05, "Ségur programme: 42.8 M in October 2025 (+40 % in a year)"),
)

USAGE_FIGURES = (
    Figure("documents consulted by town professionals per month", "2023-01..2024-12", "documents", 170e3, 0.10,
           "published-figures.md: ≈ 170 000 documents consulted per month in town (2023-2024)",
           operation="retrieve", sectors=("town_doctor", "other_professional"), per_month=True),
    Figure("growth of town professionals' consultations", "2025-09/2025-02", "ratio", 1.56, 0.10,
           "published-figures.md: +56 % between February and September 2025", measure="ratio",
           operation="search", sectors=("town_doctor", "other_professional")),
    Figure("professional DMP consultations per month (≈ 8 M a year)", "2024-10", "consultations", 0.67e6, 0.25,
           "H. Ghariani (DNS), AFP wire, late 2024; ±25 %: what a 'consultation' counts is not said",
           operation="search"),
    Figure("documents uploaded by patients in 12 months", "2024-11..2025-10", "documents", 7e6, 0.10,
           "published-figures.md: ≈ 7 M patient uploads in 12 months", sectors=("patient",)),
    Figure("activated profiles (the active_users curve)", "2025-10-31", "profiles", 23.3e6, 0.03,
           "CNAM: 23.3 M end October 2025", measure="curve", curve="active_users"),
    Figure("people connecting in a month (the connecting_users curve)", "2025-01-15", "people", 2.5e6, 0.05,
           "CNAM 'plus de 2,5 millions d'utilisateurs tous les mois', January 2025 (relayed by ordremk.fr)",
           measure="curve", curve="connecting_users"),
)

FIGURES = DEPOSIT_FIGURES + USAGE_FIGURES

Daily = Callable[[str, str], np.ndarray | None]  # (operation, sector) -> counts per day, or None if unknown


def _bounds(text: str) -> tuple[dt.date, dt.date]:
    """First and last day of YYYY, YYYY-MM or YYYY-MM-DD."""
    if len(text) == 4:
        return dt.date(int(text), 1, 1), dt.date(int(text), 12, 31)
    if len(text) == 7:
        year, month = int(text[:4]), int(text[5:])
        return dt.date(year, month, 1), dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    day = dt.date.fromisoformat(text)
    return day, day


def _days(period: str, calendar: Calendar) -> np.ndarray | None:
    """Boolean mask of the period's days, or None when the period is not wholly simulated."""
    first, _, last = period.partition("..")
    start, end = _bounds(first)[0], _bounds(last or first)[1]
    if start < calendar.start or end > calendar.end:
        return None
    index = np.arange(calendar.days)
    return (index >= calendar.day_index(start)) & (index <= calendar.day_index(end))


def _type_fraction(scenario: Scenario, sector: str, code: str | None) -> float:
    if code is None:
        return 1.0
    types = scenario.patients.upload_types if sector == "patient" else scenario.sectors[sector].document_types
    return sum(t.share for t in types if t.code == code) / sum(t.share for t in types)


def _count(figure: Figure, scenario: Scenario, days: np.ndarray, daily: Daily, sectors: tuple[str, ...]) -> float | None:
    total = 0.0
    for sector in sectors:
        series = daily(figure.operation, sector)
        if series is None:
            return None
        total += float(series[days].sum()) * _type_fraction(scenario, sector, figure.type_code)
    return total


def model_value(figure: Figure, scenario: Scenario, calendar: Calendar, daily: Daily) -> float | None:
    """The model's value of ``figure``, or None when its period is not simulated (or not measurable)."""
    if figure.measure == "curve":
        day = dt.date.fromisoformat(figure.period)
        if not calendar.start <= day <= calendar.end:
            return None
        return float(curve_per_day(getattr(scenario.patients, figure.curve), calendar)[calendar.day_index(day)])
    if figure.measure == "ratio":
        later, earlier = (_days(p, calendar) for p in figure.period.split("/"))
        if later is None or earlier is None:
            return None
        top, bottom = (_count(figure, scenario, d, daily, figure.sectors) for d in (later, earlier))
        return None if top is None or not bottom else top / bottom
    days = _days(figure.period, calendar)
    if days is None:
        return None
    if figure.measure == "share":
        part = _count(figure, scenario, days, daily, figure.sectors)
        whole = _count(figure, scenario, days, daily, PROFESSIONAL_SECTORS)
        return None if part is None or not whole else part / whole
    value = _count(figure, scenario, days, daily, figure.sectors)
    if value is not None and figure.per_month:
        value /= len(set(calendar.month_labels[days].tolist()))
    return value
