"""Properties of the engine that must hold for any seed, period and scale."""

import datetime as dt

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.calendar import Calendar
from simulator.engine import simulate
from simulator.outputs import monthly_counts, write_counts_parquet
from simulator.production import expected_deposits

FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
starts = st.dates(min_value=dt.date(2023, 1, 1), max_value=dt.date(2026, 12, 28))


@FAST
@given(seed=st.integers(0, 2**32 - 1), start=starts, days=st.integers(1, 3), scale=st.floats(0.0005, 0.02))
def test_counts_are_never_negative_and_deposits_balance(baseline, seed, start, days, scale):
    scenario = baseline.with_overrides(start=start, end=start + dt.timedelta(days=days - 1), seed=seed, scale=scale)
    traffic = simulate(scenario)
    assert traffic.counts.min() >= 0
    assert traffic.ledger.balanced


@FAST
@given(seed=st.integers(0, 1000), start=starts)
def test_totals_are_conserved_across_bucket_sizes(baseline, tmp_path_factory, seed, start):
    traffic = simulate(baseline.with_overrides(start=start, end=start + dt.timedelta(days=1), seed=seed, scale=0.002))
    folder = tmp_path_factory.mktemp("buckets")
    totals = {}
    for bucket in ("minute", "hour"):
        table = pq.read_table(write_counts_parquet(traffic, folder / f"{bucket}.parquet", bucket) and folder / f"{bucket}.parquet")
        grouped = table.group_by(["sector", "operation"]).aggregate([("count", "sum")])
        totals[bucket] = {(r["sector"], r["operation"]): r["count_sum"] for r in grouped.to_pylist()}
        assert pc.sum(table["count"]).as_py() == traffic.counts.sum()
    assert totals["minute"] == totals["hour"]
    months, table = monthly_counts(traffic)
    assert table.sum() == traffic.counts.sum()


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_same_seed_same_output(smoke, seed):
    first, second = simulate(smoke.with_overrides(seed=seed)), simulate(smoke.with_overrides(seed=seed))
    np.testing.assert_array_equal(first.counts, second.counts)
    other = simulate(smoke.with_overrides(seed=seed + 1))
    assert not np.array_equal(first.counts, other.counts)


@FAST
@given(scale=st.floats(0.001, 1.0), factor=st.floats(1.5, 4.0))
def test_expected_rates_scale_exactly_linearly(baseline, scale, factor):
    scenario = baseline.with_overrides(start=dt.date(2025, 3, 3), end=dt.date(2025, 3, 3))
    calendar = Calendar(scenario.period.start, scenario.period.end)
    small = expected_deposits(scenario.with_overrides(scale=scale), calendar)
    large = expected_deposits(scenario.with_overrides(scale=min(scale * factor, 4.0)), calendar)
    ratio = min(scale * factor, 4.0) / scale
    for sector in small:
        np.testing.assert_allclose(large[sector], small[sector] * ratio, rtol=1e-9)


def test_scale_scales_drawn_totals_linearly(baseline):
    day = baseline.with_overrides(start=dt.date(2025, 10, 14), end=dt.date(2025, 10, 14))
    small, large = simulate(day.with_overrides(scale=0.05)), simulate(day.with_overrides(scale=0.2))
    for operation_totals_small, operation_totals_large in zip(small.counts.sum(axis=(1, 2)), large.counts.sum(axis=(1, 2))):
        expected = 4 * operation_totals_small
        # Poisson counts: allow five standard deviations of the difference
        assert abs(operation_totals_large - expected) <= 5 * np.sqrt(operation_totals_large + 16 * operation_totals_small) + 1
