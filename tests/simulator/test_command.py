"""`segur simulate` as a user runs it: the files of the contract, clear errors, nothing half-written."""

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from segur.cli import main
from simulator.scenario import load_scenario

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
    assert {"deposit", "search", "retrieve", "mask", "delete", "block", "history"} <= {r["operation"] for r in rows}
    assert {r["month"] for r in rows} == {"2025-10"}


def test_summary_contract(smoke_run):
    out, _ = smoke_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "smoke" and summary["seed"] == 3 and summary["scale"] == 0.004
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


def _check(*args):
    result = CliRunner().invoke(main, ["simulate", *map(str, args), "--check"])
    return result


def test_check_prints_the_resolved_scenario_as_yaml_and_simulates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # the default result directory would land here
    result = _check(SCENARIOS / "what-if-obligation-2026.yaml")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert list(tmp_path.iterdir()) == []             # nothing simulated, nothing written
    assert resolved["name"] == "what-if-obligation-2026"
    assert resolved["period"] == {"start": dt.date(2026, 12, 7), "end": dt.date(2026, 12, 7)}  # inherited from peak-day-2026
    events, assumptions = resolved["events"], resolved["assumptions"]
    assert events["obligation-2026"]["kind"] == "obligation"
    assert events["obligation-2026"]["dmp_share"] == 0.95
    # assumptions at central, wherever they were declared: here, one and two levels up
    assert events["obligation-2026"]["consultation_share"] == assumptions["costly_prescription_share"]["central"]
    assert events["flu-2026"]["amplitude"] == assumptions["flu_amplitude"]["central"]
    assert events["flu-2026"]["kind"] == "epidemic"
    assert events["lab-strike-2024"]["withheld_share"] == assumptions["lab_strike_withheld"]["central"]
    assert load_scenario(SCENARIOS / "what-if-obligation-2026.yaml").events["obligation-2026"].consultation_share \
        == events["obligation-2026"]["consultation_share"]
    assert set(resolved["sectors"]) == {"hospital", "town_doctor", "lab", "imaging", "pharmacy",
                                        "other_professional", "medico_social"}
    assert set(resolved["assumption_levels"].values()) == {"central"}


def test_check_shows_the_chosen_level_and_leaves_switched_off_events_out(tmp_path):
    scenario = tmp_path / "quiet.yaml"
    scenario.write_text(f"extends: {SCENARIOS / 'peak-day-2026.yaml'}\nname: quiet\n"
                        "events:\n  flu-2026:\n    enabled: false\n")
    result = CliRunner().invoke(main, ["simulate", str(scenario), "--assumptions", "high", "--check"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert "flu-2026" not in resolved["events"] and "lab-strike-2024" in resolved["events"]
    assert set(resolved["assumption_levels"].values()) == {"high"}
    assert resolved["patients"]["retrieves_per_session"] == resolved["assumptions"]["patient_views"]["high"]


def test_check_of_a_bad_scenario_exits_2_with_the_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {SCENARIOS / 'peak-day-2026.yaml'}\nevents:\n  flu-2026:\n    amplitude: 0.3\n")
    result = _check(bad)
    assert result.exit_code == 2
    assert "bad.yaml" in result.stderr and "events.flu-2026.amplitude" in result.stderr and "flu_amplitude" in result.stderr
    assert result.stdout == ""
    bad.write_text(f"extends: {SCENARIOS / 'smoke.yaml'}\nreplay:\n  minuts: 5\n")
    result = _check(bad)
    assert result.exit_code == 2 and "bad.yaml: replay.minuts: unknown key" in result.stderr and result.stdout == ""


def test_assumptions_level_reaches_the_summary(tmp_path):
    runs = {}
    for level in ("low", "high"):
        out = tmp_path / level
        result = CliRunner().invoke(main, ["simulate", str(SCENARIOS / "smoke.yaml"), "--assumptions", level,
                                           "--no-schedule", "--no-plots", "--no-ranges", "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs[level] = json.loads((out / "summary.json").read_text())
        assert runs[level]["assumption_level"] == level
        assert {entry["used"] for entry in runs[level]["assumptions"]} == {level}
    assert runs["low"]["peak_hour"]["per_second"] < runs["high"]["peak_hour"]["per_second"]
    result = CliRunner().invoke(main, ["simulate", str(SCENARIOS / "smoke.yaml"), "--assumptions", "medium"])
    assert result.exit_code == 2 and "medium" in result.stderr
