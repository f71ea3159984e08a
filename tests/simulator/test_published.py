"""The baseline against every published point of 2023-2025: each within its stated tolerance, each sourced.

One national run of the three years (about 5 s), shared by the module.
"""

import datetime as dt

import pytest

from simulator.engine import simulate
from simulator.outputs import calibration, professional_deposits_by_month
from simulator.published import FIGURES

D = dt.date
KEYS = {"what", "period", "unit", "published", "model", "tolerance", "source"}


@pytest.fixture(scope="module")
def three_years(baseline):
    traffic = simulate(baseline.with_overrides(start=D(2023, 1, 1), end=D(2025, 12, 31), scale=1.0))
    return traffic, calibration(traffic)


def test_at_least_ten_published_points_are_compared(three_years):
    _, rows = three_years
    assert len(rows) >= 10
    assert len(rows) == len(FIGURES)                       # all of them fall in 2023-2025
    assert {row["unit"] for row in rows} >= {"share", "documents"}
    for row in rows:
        assert KEYS <= set(row), row
        assert row["published"] > 0 and row["tolerance"] > 0


@pytest.mark.parametrize("index", range(len(FIGURES)), ids=[f"{f.what[:40]} {f.period}" for f in FIGURES])
def test_every_point_is_within_its_tolerance_and_has_a_source(three_years, index):
    _, rows = three_years
    row = rows[index]
    assert row["what"] == FIGURES[index].what and row["period"] == FIGURES[index].period
    assert isinstance(row["source"], str) and len(row["source"].strip()) > 10
    if row["unit"] == "share":                             # absolute points of a fraction
        assert 0 <= row["model"] <= 1 and 0 < row["published"] < 1 and row["tolerance"] < 0.2
        difference = row["model"] - row["published"]
    else:                                                  # relative
        difference = row["model"] / row["published"] - 1
    assert row["difference"] == pytest.approx(difference, abs=1e-4)
    assert abs(difference) <= row["tolerance"], row
    assert row["within"] is True


def test_the_model_column_is_read_off_the_run(three_years):
    traffic, rows = three_years
    by_month = professional_deposits_by_month(traffic)
    monthly = [row for row in rows if row["unit"] == "documents" and len(row["period"]) == 7
               and row["what"].startswith("professional deposits")]
    assert len(monthly) >= 5
    for row in monthly:
        assert row["model"] == pytest.approx(by_month[row["period"]], abs=1)
    yearly = {row["period"]: row["model"] for row in rows if row["what"].startswith("professional deposits")
              and len(row["period"]) == 4}
    for year, model in yearly.items():
        assert model == pytest.approx(sum(v for k, v in by_month.items() if k.startswith(year)), abs=1)


def test_points_outside_the_period_are_left_out(baseline):
    traffic = simulate(baseline.with_overrides(start=D(2025, 10, 1), end=D(2025, 10, 31), scale=0.01))
    periods = {row["period"] for row in calibration(traffic)}
    assert "2025-10" in periods and "2025-10-31" in periods
    assert not periods & {"2023-06", "2023-12", "2024", "2025", "2024-10", "2025-01-15"}
