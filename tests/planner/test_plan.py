"""`segur plan scenarios/smoke.yaml` end to end on the embedded SQLite service."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "smoke"
    proc = subprocess.run([sys.executable, "-m", "segur.cli", "plan", str(ROOT / "scenarios" / "smoke.yaml"),
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return out, proc, json.loads((out / "plan.json").read_text())


def test_plan_has_the_contract_fields(planned):
    _, _, plan = planned
    for key in ("scenario", "slo", "steps", "max_sustainable_speedup", "documents_per_year_sustained", "bottleneck",
                "storage_bytes_per_year", "predicted_knee_speedup"):
        assert key in plan
    assert len(plan["steps"]) >= 2
    for step in plan["steps"]:
        for key in ("speedup", "offered_rps", "achieved_rps", "p50_ms", "p99_ms", "error_rate", "lateness_p99_ms"):
            assert isinstance(step[key], (int, float))
    assert plan["scenario"] == "smoke" and plan["storage_bytes_per_year"] > 0


def test_exit_code_says_whether_the_nation_is_held(planned):
    _, proc, plan = planned
    assert (proc.returncode == 0) == plan["holds"]
    assert plan["holds"] == (plan["national_headroom"][plan["assume"]] >= plan["headroom_required"]
                             and plan["wrong_answers"] == 0)
    assert plan["holds_scenario"] == (plan["max_sustainable_speedup"] >= 1)   # the sample itself
    assert plan["national_headroom"]["central"] == pytest.approx(plan["max_sustainable_speedup"] * plan["scale"], rel=1e-3)


def test_steps_agree_with_locust_statistics(planned):
    out, _, plan = planned
    for step in plan["steps"]:
        folder = out / step["folder"]
        with (folder / "locust_stats.csv").open() as handle:
            total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
        assert step["requests"] == int(total["Request Count"]) + step["unanswered"]
        assert step["p99_ms"] == float(total["99%"]) and step["p50_ms"] == float(total["50%"])
        replay = json.loads((folder / "replay.json").read_text())
        assert step["sent"] == replay["sent"] == step["planned"] if step["holds"] else step["sent"] <= step["planned"]
        if step["holds"]:
            assert abs(step["achieved_rps"] / step["offered_rps"] - 1) <= 0.05
    held = [s["speedup"] for s in plan["steps"] if s["holds"]]
    assert plan["max_sustainable_speedup"] == max(held, default=0)


def test_report_is_self_contained_with_plots(planned):
    out, _, plan = planned
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and plan["verdict"].split(":")[0][:40] in html
    for name in ("latency_knee.png", "latency_by_operation.png", "throughput.png", "errors_lateness.png"):
        assert (out / name).stat().st_size > 10_000
    assert all((out / s["folder"] / "locust.html").exists() for s in plan["steps"])


def test_the_report_opens_with_the_answer_and_its_figures_agree(planned):
    out, _, plan = planned
    html = (out / "report.html").read_text()
    banner = html.index('class="banner')
    assert banner < html.index("<img") and ("HOLDS the national" in html[banner:banner + 300])
    assert "Latency by operation" in html and all(name in html for name in plan["steps"][0]["by_operation"])
    for step in plan["steps"]:
        assert step["lateness_p99_ms"] >= 0
    check = plan["model_check"]
    assert check["error"] is None or (abs(check["error"]) > 0.25) == bool(check["note"])
    # a year of documents comes from the scenario's calendar year (smoke: a Tuesday of October 2025), not 365 Tuesdays
    assert plan["documents_per_year_national"] < 600e6 and plan["documents_per_year_national"] > 300e6


def test_the_outage_recovery_surge_is_replayed_against_the_service(planned):
    out, _, plan = planned
    drain = plan["outage_drain"]
    replayed = drain["recovery_replay"]
    window = replayed["window"]
    assert window == drain["surge_window"] and window["start"] >= drain["recovered_at"]
    assert 0 < window["national_rps"] <= drain["surge_peak_rps"]   # a stretch's mean is at most its busiest minute
    # replayed at the national rate (x the headroom asked): the sample's window times 1/scale
    assert replayed["speedup"] == pytest.approx(plan["headroom_required"] / plan["scale"])
    assert replayed["offered_rps"] == pytest.approx(window["national_rps"] * plan["headroom_required"], rel=0.25)
    assert drain["surge_holds"] == replayed["holds"] and isinstance(drain["surge_holds_computed"], bool)
    with (out / replayed["folder"] / "locust_stats.csv").open() as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    assert replayed["requests"] == int(total["Request Count"]) + json.loads(
        (out / replayed["folder"] / "replay.json").read_text())["unanswered"]
    assert "Replayed against the service" in (out / "report.html").read_text()
