"""corpus.parquet is the record's history: its counts are the simulated deposits (exactly, inside the period)
and the model's expectation (before it); reads aim at documents that exist, by the stated age; `needed` marks
every document the window uses."""

import csv
import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from segur.errors import InputError
from simulator.calendar import Calendar
from simulator.engine import OPERATIONS, simulate
from simulator.history import AgeLaw, History
from simulator.outputs import write_corpus
from simulator.patients import expected_activity
from simulator.production import deposits_per_day, volume
from simulator.run import run
from simulator.scenario import SECTORS, load_scenario
from simulator.schedule import build_replay, fixed_window

WINDOW = dt.datetime(2025, 10, 14, 10, 0)


def _scenario(smoke, scale=0.0005, **corpus):
    """smoke over six weeks (September whole inside the period), its window fixed, the whole history written."""
    scenario = smoke.with_overrides(start=dt.date(2025, 9, 1), end=dt.date(2025, 10, 14), scale=scale)
    settings = scenario.corpus.model_copy(update={"max_rows": 10_000_000, "rows": "all", **corpus})
    replay = scenario.replay.model_copy(update={"start": WINDOW, "minutes": 10})
    return scenario.model_copy(update={"corpus": settings, "replay": replay})


@pytest.fixture(scope="module")
def written(smoke, tmp_path_factory):
    scenario = _scenario(smoke)
    out = tmp_path_factory.mktemp("history") / "run"
    result = run(scenario, out, draw=False, ranges=False)
    corpus = pq.read_table(out / "corpus.parquet")
    schedule = pq.read_table(out / "schedule.parquet")
    return scenario, result, out, corpus, schedule


def _monthly_deposits(path: Path) -> dict[tuple[str, str], int]:
    with path.open() as handle:
        return {(row["month"], row["sector"]): int(row["count"]) for row in csv.DictReader(handle)
                if row["operation"] == "deposit"}


def test_corpus_counts_match_monthly_csv_inside_the_period_and_the_model_before_it(written):
    scenario, result, out, corpus, _ = written
    months = pc.strftime(corpus["date"], format="%Y-%m").to_pylist()
    sectors = corpus["author_sector"].cast("string").to_pylist()
    found = Counter(zip(months, sectors))
    assert sum(found.values()) == corpus.num_rows == result.summary["corpus"]["documents"]
    monthly = _monthly_deposits(out / "monthly.csv")
    traffic = result.traffic
    for sector in SECTORS:
        # September: wholly inside the period and before the window: exactly monthly.csv
        assert found[("2025-09", sector)] == monthly[("2025-09", sector)], sector
        # October up to the window's start: the drawn deposits of those minutes
        before = traffic.counts[OPERATIONS.index("deposit"), SECTORS.index(sector),
                                traffic.calendar.minute_index(dt.datetime(2025, 10, 1)):
                                traffic.calendar.minute_index(WINDOW)].sum()
        assert found[("2025-10", sector)] == before, sector
    # before the period: the model's expectation at the scale, within Poisson noise, by year and sector
    before = Calendar(scenario.corpus.history_start, dt.date(2025, 8, 31))
    expected = deposits_per_day(scenario, before, volume(scenario))
    expected["patient"] = expected_activity(scenario.patients, scenario.patients.uploads_per_active_user_per_year,
                                            volume(scenario), before).reshape(-1, 1440).sum(axis=1)
    years = before.dates.astype("datetime64[Y]").astype(int) + 1970
    by_year = Counter((int(month[:4]), sector) for (month, sector), n in found.items() for _ in range(n)
                      if month < "2025-09")
    for sector in SECTORS:
        for year in range(2021, 2026):
            mean = float(expected[sector][years == year].sum())
            assert abs(by_year[(year, sector)] - mean) <= 5 * math.sqrt(mean) + 2, (year, sector, mean)
    assert min(months) >= "2021-01" and corpus["date"].to_numpy().max() < np.datetime64(WINDOW, "ms")


def test_needed_rows_lead_and_cover_every_document_the_schedule_uses(written):
    _, result, _, corpus, schedule = written
    needed = corpus["needed"].to_numpy(zero_copy_only=False)
    count = int(needed.sum())
    assert count == result.summary["corpus"]["needed_documents"] > 0 and needed[:count].all() and not needed[count:].any()
    ids = corpus["document_id"].to_pylist()
    needed_ids, other_ids = set(ids[:count]), set(ids[count:])
    rows = schedule.to_pylist()
    deposited = {row["document_id"] for row in rows if row["operation"] == "deposit"}
    used = {row["document_id"] for row in rows if row["operation"] in ("retrieve", "mask", "delete")}
    assert used <= needed_ids | deposited and not used & other_ids
    # the rest of the needed rows are the searched patients' records; a block's target wrote one of them
    patients = {row["patient_ins"] for row in rows}
    assert set(corpus["patient_ins"].to_pylist()[:count]) <= patients
    authors = set(corpus["author_id"].to_pylist()[:count])
    assert all(row["target_rpps"] in authors for row in rows if row["operation"] == "block")
    # the non-needed rows are in a random order, not by date
    dates = corpus["date"].to_numpy()[count:]
    assert not (np.diff(dates.astype(np.int64)) >= 0).all()


def test_reads_target_documents_that_exist_at_the_time_of_the_read(written):
    _, result, _, corpus, schedule = written
    created = dict(zip(corpus["document_id"].to_pylist(), corpus["date"].to_pylist()))
    start = result.plan.window.start
    deposited_at = {}
    for row in schedule.to_pylist():
        sent = start + dt.timedelta(seconds=row["offset_s"])
        if row["operation"] == "deposit":
            deposited_at[row["document_id"]] = sent
        elif row["operation"] in ("retrieve", "mask", "delete"):
            made = created.get(row["document_id"]) or deposited_at.get(row["document_id"])
            assert made is not None and made < sent, row


def test_read_ages_follow_the_stated_distribution(smoke):
    scenario = _scenario(smoke, scale=0.002)
    traffic = simulate(scenario)
    history = History(traffic, fixed_window(traffic, WINDOW, 10).start_minute, WINDOW, np.random.default_rng(7))
    reads = np.random.default_rng(8).uniform(0, 600, 20_000)
    sectors, created = history.take(history.read_targets(reads), np.arange(7))
    ages = reads - created
    assert (created < 0).all() and (sectors < 7).all()
    law = AgeLaw(scenario.corpus.read_age)
    ages.sort()
    empirical = np.arange(1, ages.size + 1) / ages.size
    assert np.abs(empirical - law.cdf(ages)).max() < 0.02  # Kolmogorov-Smirnov distance (1 % level: 0.0115)
    grid = np.linspace(1.0, 730 * 86_400, 200_000)
    median = grid[np.searchsorted(law.cdf(grid), 0.5)]  # 60 days cut at 730: about 55 days
    assert 50 * 86_400 < median < 60 * 86_400
    assert abs(np.median(ages) / median - 1) < 0.05 and ages.max() <= 730 * 86_400
    # taken from the history, never added to it
    assert history.remaining.sum() == history.drawn.sum() - reads.size


def test_read_age_is_an_assumption_with_a_range(baseline):
    assumption = baseline.assumptions["read_age"]
    assert assumption.paths == ["corpus.read_age.median_days"] and assumption.low < assumption.central < assumption.high
    assert baseline.corpus.read_age.median_days == assumption.central


def test_storage_by_year_is_national_cumulative_and_agrees_with_the_corpus(written):
    scenario, result, _, corpus, _ = written
    storage = result.summary["storage_by_year"]
    assert [entry["year"] for entry in storage] == list(range(2021, 2026))
    documents = [entry["documents"] for entry in storage]
    assert documents == sorted(documents) and 1.2e9 > documents[-2] > 4e8  # > 500 M documents by the end of 2024
    for entry in storage:
        assert entry["documents"] == sum(s["documents"] for s in entry["by_sector"].values())
        assert entry["bytes"] == sum(s["bytes"] for s in entry["by_sector"].values())
    up_to_2024 = int((corpus["date"].to_numpy() < np.datetime64("2025-01-01")).sum())
    assert up_to_2024 / scenario.scale == pytest.approx(documents[-2], rel=0.02)
    summary = result.summary["corpus"]
    assert summary["bytes"] == int(pc.sum(corpus["size_bytes"]).as_py()) and not summary["bytes_estimated"]
    assert json.dumps(result.summary)  # every figure is plain JSON


def test_a_history_larger_than_max_rows_is_sampled_and_needed_only_writes_the_needed(smoke, tmp_path):
    scenario = _scenario(smoke, max_rows=5_000)
    plan_rows = {}
    for name, current in (("sample", scenario), ("needed", _scenario(smoke, rows="needed"))):
        traffic = simulate(current)
        plan = build_replay(traffic, fixed_window(traffic, WINDOW, 10))
        plan_rows[name] = write_corpus(plan, tmp_path / f"{name}.parquet")
        metadata = pq.ParquetFile(tmp_path / f"{name}.parquet").metadata.metadata
        assert metadata[b"rows"].decode() == name and int(metadata[b"history_documents"]) == plan.history.documents
    assert plan_rows["sample"]["rows"] == 5_000 and plan_rows["needed"]["rows"] == plan_rows["needed"]["needed"]


def _child(tmp_path, scenarios_dir, text):
    path = tmp_path / "child.yaml"
    path.write_text(f"extends: {scenarios_dir / 'smoke.yaml'}\n{text}")
    return path


@pytest.mark.parametrize("text, where", [
    ("corpus: {history_star: 2022-01-01}", "corpus.history_star: unknown key"),
    ("corpus: {history_start: 2022-02-30}", "corpus.history_start"),
    ("corpus: {rows: some}", "corpus.rows"),
    ("corpus: {max_rows: 0}", "corpus.max_rows"),
    ("corpus: {read_age: {sigma: -1}}", "corpus.read_age.sigma"),
    ("corpus: {read_age: {median_days: 3}}", "corpus.read_age.median_days: set by assumption 'read_age'"),
])
def test_bad_corpus_keys_name_the_file_and_the_key_path(tmp_path, scenarios_dir, text, where):
    path = _child(tmp_path, scenarios_dir, text)
    with pytest.raises(InputError) as error:
        load_scenario(path)
    assert str(path) in str(error.value) and where in str(error.value)


def test_a_history_starting_after_the_window_is_refused(smoke):
    scenario = _scenario(smoke, history_start=dt.date(2025, 10, 20))
    traffic = simulate(scenario)
    with pytest.raises(InputError, match="corpus.history_start: 2025-10-20 is after the replay window"):
        build_replay(traffic, fixed_window(traffic, WINDOW, 10))
