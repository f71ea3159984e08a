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
        replay = json.loads((folder / "replay.json").read_text())
        with (folder / "locust_stats.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        # the SLO is judged on the calls (Locust's Aggregated row holds the interactions too): the driver's count of
        # calls is Locust's, row by row
        calls = replay["calls_aggregated"]
        by_call: dict[str, int] = {}
        for row in rows:
            if row["Type"] in ("GET", "POST", "DELETE"):
                by_call[row["Name"]] = by_call.get(row["Name"], 0) + int(row["Request Count"])
        assert sum(by_call.values()) == calls["count"] > 0
        assert step["requests"] == calls["count"] + replay["not_sent"] + step["unanswered"]
        assert step["p99_ms"] == calls["p99_ms"] and step["p50_ms"] == calls["p50_ms"]
        interactions = sum(int(r["Request Count"]) for r in rows if r["Type"].endswith(")"))
        assert interactions == sum(f["count"] for f in replay["interactions"].values())
        assert step["sent"] == replay["sent"] == step["planned"] if step["holds"] else step["sent"] <= step["planned"]
        if step["holds"]:
            assert abs(step["achieved_rps"] / step["offered_rps"] - 1) <= 0.05
    held = [s["speedup"] for s in plan["steps"] if s["holds"]]
    assert plan["max_sustainable_speedup"] == max(held, default=0)


def test_report_is_self_contained_with_plots(planned):
    out, _, plan = planned
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and plan["verdict"].split(":")[0][:40] in html
    for name in ("latency_knee.png", "latency_by_operation.png", "throughput.png", "errors_lateness.png",
                 "capacity_by_corpus.png"):
        assert (out / name).stat().st_size > 10_000
    assert all((out / s["folder"] / "locust.html").exists() for s in plan["steps"])


def test_the_report_opens_with_the_answer_and_its_figures_agree(planned):
    out, _, plan = planned
    html = (out / "report.html").read_text()
    banner = html.index('class="banner')
    assert banner < html.index("<img") and ("HOLDS the national" in html[banner:banner + 300])
    assert "Latency by call" in html and all(name in html for name in plan["steps"][0]["by_operation"])
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
    replay = json.loads((out / replayed["folder"] / "replay.json").read_text())
    with (out / replayed["folder"] / "locust_stats.csv").open() as handle:  # the calls, as Locust counted them
        calls = sum(int(row["Request Count"]) for row in csv.DictReader(handle) if row["Type"] in ("GET", "POST", "DELETE"))
    assert calls == replay["calls_aggregated"]["count"]
    assert replayed["requests"] == calls + replay["not_sent"] + replay["unanswered"]
    assert replayed["protocol"] == plan["protocol"] == "dmp" and "ITI-41" in replayed["calls"]
    assert "Replayed against the service" in (out / "report.html").read_text()


def test_the_plan_is_priced_per_interaction_with_both_interfaces_side_by_side(planned):
    """plan.json gives, for the professionals over XDS.b (dmp) and over PDSm4DMP (fhir), the capacity and, per
    interaction and per call type, rate, latency and the service's CPU per call (its /metrics attribution)."""
    out, _, plan = planned
    assert plan["protocol"] == "dmp" and set(plan["protocols"]) == {"dmp", "fhir"}
    dmp, fhir = plan["protocols"]["dmp"], plan["protocols"]["fhir"]
    assert {"ITI-41", "TD0.2"} <= set(dmp["calls"])
    for name, figures in dmp["interactions"].items():  # professionals' deposits are ITI-41s, never ITI-65s
        if name.startswith("deposit (xds)"):
            assert set(figures["calls_per_interaction"]) <= {"TD0.2", "ITI-41"}
    assert {"ITI-65", "TD0.2 (FHIR)"} <= set(fhir["calls"]) and not any(c.startswith("ITI-18") for c in fhir["calls"])
    for priced in (dmp, fhir):
        for name, call in priced["calls"].items():
            assert call["per_second"] > 0 and call["p50_ms"] <= call["p99_ms"]
            assert call["service_cpu_us"] is not None and call["service_cpu_us"] > 0, name
        deposits = [f for name, f in priced["interactions"].items() if name.startswith("deposit (")]
        assert deposits and all(f["calls_per_interaction"] for f in deposits)
        # a deposit is its calls: its CPU is the calls' CPU times how many it makes
        for f in deposits:
            expected = sum(n * priced["calls"][c]["service_cpu_us"] for c, n in f["calls_per_interaction"].items())
            assert f["service_cpu_us"] == pytest.approx(expected, rel=1e-3)
    assert (out / "compare-fhir" / "steps").is_dir()
    html = (out / "report.html").read_text()
    assert "side by side" in html and "consultation (xds)" in html and "deposit (fhir)" in html


def test_a_side_by_side_search_skipped_for_disk_is_said_not_crashed():
    from planner.command import _compared
    from planner.report import _protocols
    table = _protocols({"protocols": {
        "dmp": {"max_sustainable_speedup": 10.0, "national_headroom": {"low": 1, "central": 2, "high": 3},
                "holds": True, "measured_at_speedup": 10.0, "interactions": {}, "calls": {}},
        "fhir": {"skipped": "its steps may deposit 9 GB and 1 GB of the disk budget is left"}}})
    assert "not searched: its steps may deposit 9 GB" in table and "10×" in table
    assert _compared("dmp") == "fhir" and _compared("fhir") == "dmp" and _compared("xds") is None


def test_the_plan_is_measured_against_a_cold_corpus_by_default(planned):
    """By default the corpus is cold: its files are evicted before each step and after each pass over the window,
    so the retrieves of older documents read the disk; plan.json says what was measured against, and the disk's
    reads per step."""
    out, _, plan = planned
    corpus = plan["corpus"]
    assert corpus["regime"] == "cold" and corpus["documents"] > 0 and corpus["bytes"] > 0
    assert corpus["ram_bytes"] > corpus["bytes"] and corpus["larger_than_ram"] is False
    [entry] = plan["capacity_by_corpus"]
    assert entry["regime"] == "cold" and entry["max_sustainable_speedup"] == plan["max_sustainable_speedup"]
    assert entry["documents"] == corpus["documents"]
    for step in plan["steps"]:
        assert step["corpus"] == "cold" and step["evictions"] >= 1
        assert step["disk_read_iops"] is not None and step["disk_read_mb_per_s"] >= 0
        assert 0 <= step["disk_busy_share"] <= 1
    # a step at more than one pass over the window evicts again after each pass
    window_s = plan["window"]["minutes"] * 60
    for step in plan["steps"]:
        passes = step["wall_s"] * step["speedup"] / window_s
        if passes >= 3:
            assert step["evictions"] >= passes / 2, step
    years = plan["storage"]["by_year"]
    assert years and all(b["documents"] >= a["documents"] for a, b in zip(years, years[1:]))   # cumulative
    database = plan["storage"]["database"]   # what the national index needs in memory, at the bytes a document
    assert database["bytes_per_document"] > 0 and database["documents"] >= corpus["documents"]
    assert set(database["national_bytes_by_year"]) == {str(y["year"]) for y in years}
    assert "against a cold corpus" in plan["verdict"]
    assert "The corpus</h2>" in (out / "report.html").read_text()
    assert (out / "capacity_by_corpus.png").is_file()
