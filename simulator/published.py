"""Published figures the simulator is calibrated on (see shared/reference/published-figures.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MonthlyFigure:
    month: str      # YYYY-MM
    documents: float
    bound: str      # "about" (± tolerance) or "above" (a lower bound)
    source: str


PROFESSIONAL_DEPOSITS = (
    MonthlyFigure("2024-10", 30e6, "above", "Ségur programme: > 30 M documents in October 2024"),
    MonthlyFigure("2025-10", 42.8e6, "about", "Ségur programme: 42.8 M documents in October 2025 (+40 % in a year)"),
)
YEARLY_GROWTH_2024_2025 = 0.40
