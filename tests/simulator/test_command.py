"""`segur simulate` as a user runs it: the files of the contract, clear errors, nothing half-written."""

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from segur.cli import main

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "smoke"
    result = CliRunner().invoke(main, ["simulate", str(SCENARIOS / "smoke.yaml"), "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    return out, result


def test_prints_the_result_directory_last(smoke_run):
    out, result = smoke_run
    assert result.stdout.strip().splitlines()[-1] == str(out)


def test_monthly_csv_contract(smoke_run):
    out, _ = smoke_run
    with (out / "monthly.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["month", "sector", "operation", "count"]
    assert {r["sector"] for r in rows} == {"hospital", "town_doctor", "lab", "imaging", "pharmacy",
                                           "other_professional", "medico_social", "patient"}
    assert {"deposit", "search", "retrieve", "mask", "delete", "block"} <= {r["operation"] for r in rows}
    assert {r["month"] for r in rows} == {"2025-10"}


def test_summary_contract(smoke_run):
    out, _ = smoke_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "smoke" and summary["seed"] == 3 and summary["scale"] == 0.002
    for key in ("totals", "annualised_deposit_rate", "peak_hour", "peak_minute", "replay_window", "deposit_ledger"):
        assert key in summary
    assert summary["peak_hour"]["per_second"] > 0 and "start" in summary["peak_hour"]
    assert summary["peak_minute"]["per_second"] >= summary["peak_hour"]["per_second"]
    monthly = sum(int(r["count"]) for r in csv.DictReader((out / "monthly.csv").open()) if r["operation"] == "deposit")
    assert sum(summary["totals"]["deposit"].values()) == monthly


def test_parquet_files_and_plots(smoke_run):
    out, _ = smoke_run
    counts = pq.read_table(out / "counts.parquet")
    assert set(counts.column_names) == {"bucket_start", "sector", "operation", "count"}
    schedule = pq.read_table(out / "schedule.parquet")
    for column in ("offset_s", "operation", "actor_kind", "actor_id", "facility_id", "patient_ins", "document_id",
                   "type_code", "size_bytes"):
        assert column in schedule.column_names
    assert schedule.num_rows == json.loads((out / "summary.json").read_text())["replay_window"]["operations"]
    assert pq.read_table(out / "corpus.parquet").num_rows > 0
    for name in ("monthly_deposits", "average_day", "weekly_profile", "replay_window", "timeline"):
        assert (out / f"{name}.png").stat().st_size > 10_000


def test_bad_scenario_key_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {SCENARIOS / 'smoke.yaml'}\nreplay:\n  minuts: 5\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["simulate", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert "bad.yaml: replay.minuts: unknown key" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_existing_output_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["simulate", str(SCENARIOS / "smoke.yaml"), "--out", str(out)])
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_dates_and_periods(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["simulate", str(SCENARIOS / "smoke.yaml"), "--from", "2025-13-01"])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.stderr
    result = runner.invoke(main, ["simulate", str(SCENARIOS / "smoke.yaml"), "--from", "2025-10-20",
                                  "--to", "2025-10-10", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "end is before start" in result.stderr and not (tmp_path / "o").exists()


def test_help_shows_an_example():
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output and "segur simulate scenarios/" in result.output
