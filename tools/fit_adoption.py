"""Fit each sector's adoption S-curve and production to the published deposit figures.

The scenario's `dmp_share` S-curves (midpoint, years_10_90) and `documents_per_producer_per_day`
are not published: they are fitted here, by least squares on the logarithm of each figure, to
the published points of simulator/published.py (monthly and yearly totals, the 2024 counts by
type, the December 2023 and 2025 shares). The ceilings stay the scenario's (assumptions). The
fit uses expected daily rates (no random draw), so it takes a second.

Run: uv run python tools/fit_adoption.py [scenarios/baseline-2025.yaml]
Prints the fitted values to paste into the scenario, and the fit against each point.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.calendar import Calendar  # noqa: E402
from simulator.production import deposits_per_day  # noqa: E402
from simulator.published import DEPOSIT_FIGURES, model_value  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402

FITTED = ("hospital", "town_doctor", "lab", "imaging")
_PRIOR = 0.25  # production per producer stays within about ±25 % of the scenario's own estimate
_EPOCH = dt.date(2024, 1, 1)


def _with(scenario, params: np.ndarray):
    data = scenario.model_dump()
    for i, name in enumerate(FITTED):
        log_rate, midpoint_days, log_years = params[3 * i:3 * i + 3]
        sector = data["sectors"][name]
        sector["documents_per_producer_per_day"] = float(np.exp(log_rate))
        sector["dmp_share"]["midpoint"] = _EPOCH + dt.timedelta(days=float(midpoint_days))
        sector["dmp_share"]["years_10_90"] = float(np.exp(log_years))
    return type(scenario).model_validate(data)


def _residuals(scenario, calendar: Calendar, prior=None) -> tuple[np.ndarray, list[tuple]]:
    deposits = deposits_per_day(scenario, calendar)  # national: volume 1
    rows, residuals = [], []
    for name, rate in (prior or {}).items():
        residuals.append(np.log(scenario.sectors[name].documents_per_producer_per_day / rate) / _PRIOR)
    for figure in DEPOSIT_FIGURES:
        model = model_value(figure, scenario, calendar,
                            lambda operation, sector: deposits.get(sector) if operation == "deposit" else None)
        if model is None:
            continue
        if figure.unit == "share":
            residuals.append((model - figure.published) / max(figure.tolerance, 1e-3))
        else:
            residuals.append(np.log(max(model, 1.0) / figure.published) / max(figure.tolerance, 1e-3))
        rows.append((figure.what, figure.period, figure.published, model, figure.tolerance))
    return np.array(residuals), rows


def fit(scenario, calendar: Calendar, iterations: int = 60) -> np.ndarray:
    """Levenberg-Marquardt on the scaled residuals; returns the parameter vector."""
    params = []
    for name in FITTED:
        sector = scenario.sectors[name]
        params += [np.log(sector.documents_per_producer_per_day), (sector.dmp_share.midpoint - _EPOCH).days,
                   np.log(sector.dmp_share.years_10_90)]
    params = np.array(params, dtype=np.float64)
    steps = np.tile([1e-3, 1.0, 1e-3], len(FITTED))
    damping = 1.0
    prior = {name: scenario.sectors[name].documents_per_producer_per_day for name in FITTED}
    current, _ = _residuals(_with(scenario, params), calendar, prior)
    for _ in range(iterations):
        jacobian = np.empty((current.size, params.size))
        for j in range(params.size):
            moved = params.copy()
            moved[j] += steps[j]
            jacobian[:, j] = (_residuals(_with(scenario, moved), calendar, prior)[0] - current) / steps[j]
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ current
        while True:
            delta = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-9), -gradient)
            trial = params + delta
            trial[2::3] = np.clip(trial[2::3], np.log(0.5), np.log(8.0))
            candidate, _ = _residuals(_with(scenario, trial), calendar, prior)
            if candidate @ candidate < current @ current:
                params, current, damping = trial, candidate, max(damping / 3, 1e-6)
                break
            damping *= 4
            if damping > 1e8:
                return params
    return params


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "scenarios" / "baseline-2025.yaml"
    scenario = load_scenario(path)
    calendar = Calendar(dt.date(2021, 1, 1), dt.date(2025, 12, 31))
    fitted = _with(scenario, fit(scenario, calendar))
    for name in FITTED:
        sector = fitted.sectors[name]
        print(f"{name}: documents_per_producer_per_day {sector.documents_per_producer_per_day:.4g}, "
              f"dmp_share midpoint {sector.dmp_share.midpoint}, years_10_90 {sector.dmp_share.years_10_90:.3g}")
    _, rows = _residuals(fitted, calendar)
    for what, period, published, model, tolerance in rows:
        print(f"  {what:<45} {period:<9} published {published:>12,.3f} model {model:>12,.3f} tol {tolerance}")


if __name__ == "__main__":
    main()
