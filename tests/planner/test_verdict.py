"""The verdict is about the nation: headroom at each assumption level, --headroom, --assume, the exit code,
and a plan that cannot fit the machine refuses before it writes anything."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner import verdict

ROOT = Path(__file__).resolve().parents[2]
RANGES = {"low": {"requests_per_s": 40.0}, "central": {"requests_per_s": 50.0}, "high": {"requests_per_s": 100.0}}


def _plan(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "segur.cli", "plan", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_the_headroom_is_the_sample_speedup_times_the_scale_at_each_level():
    summary = {"scale": 0.002, "peak_hour_range": RANGES, "assumption_level": "central"}
    headroom = verdict.national_headroom(1000.0, summary)
    assert headroom["central"] == pytest.approx(2.0)          # 1000x a 1/500 sample: twice the nation
    assert headroom["low"] == pytest.approx(2.5) and headroom["high"] == pytest.approx(1.0)
    assert headroom["low"] >= headroom["central"] >= headroom["high"]
    flat = verdict.national_headroom(1000.0, {"scale": 0.002})  # no ranges: the same at every level
    assert flat == {"low": 2.0, "central": 2.0, "high": 2.0}


def test_assume_and_headroom_move_the_verdict():
    headroom = verdict.national_headroom(600.0, {"scale": 0.002, "peak_hour_range": RANGES})  # 1.5 / 1.2 / 0.6
    assert verdict.holds(headroom, 1.0, "central", 0) and verdict.holds(headroom, 1.0, "low", 0)
    assert not verdict.holds(headroom, 1.0, "high", 0)        # the high traffic is not held
    assert not verdict.holds(headroom, 1.3, "central", 0)     # "+30 %" asked: not held at central
    assert verdict.holds(headroom, 1.3, "low", 0)
    assert not verdict.holds(headroom, 0.1, "low", 1)         # a wrong answer: nothing holds


def test_the_banner_says_holds_or_not_with_the_range():
    plan = {"holds": False, "national_headroom": {"low": 1.5, "central": 1.2, "high": 0.6}, "assume": "high",
            "headroom_required": 1.0, "scenario": "s", "window": {"minutes": 10}}
    line = verdict.banner(plan)
    assert line.startswith("DOES NOT HOLD the national 10-minute peak window of s")
    assert "0.6x headroom" in line and "range 0.6x-1.5x" in line
    assert verdict.banner({**plan, "holds": True, "assume": "low"}).startswith("HOLDS")


def test_a_plan_holding_the_sample_but_not_the_asked_national_headroom_exits_1(tmp_path):
    out = tmp_path / "plan"
    proc = _plan(str(ROOT / "scenarios" / "smoke.yaml"), "--out", str(out), "--max-steps", "2",
                 "--step-seconds", "3", "--headroom", "100000")
    assert proc.returncode == 1, proc.stderr[-1500:]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["holds"] is False and plan["headroom_required"] == 100000 and plan["assume"] == "central"
    assert plan["holds_scenario"] is True                    # the sample itself (speed-up 1) was held
    assert plan["national_headroom"]["central"] < 100000
    assert "DOES NOT HOLD the national" in plan["verdict"] and "DOES NOT HOLD the national" in proc.stderr
    drain = plan["outage_drain"]
    assert drain["outage_hours"] == 1.0 and drain["backlog_documents"] > 0 and isinstance(drain["surge_holds"], bool)
    assert "DOES NOT HOLD" in (out / "report.html").read_text()
    assert not (out / "service" / "data").exists()          # the throw-away service's documents are gone


@pytest.mark.parametrize("scale", [["--scale", "0.004"], []])
def test_a_plan_that_cannot_fit_refuses_before_writing_anything(tmp_path, scale):
    out = tmp_path / "plan"
    proc = _plan(str(ROOT / "scenarios" / "smoke.yaml"), "--out", str(out), "--max-disk-gb", "0.1", *scale,
                 timeout=120)
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert "fit" in proc.stderr and "--max-disk-gb" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not any(tmp_path.iterdir())


def test_a_search_stopped_before_any_step_broke_says_so_with_the_highest_speedup_tried():
    from planner.plan import SearchLimits, _bottleneck
    from planner.service import Service
    from planner.steps import SLO

    found = _bottleneck(None, Service(Path("."), Path("key"), url="http://127.0.0.1:9"), SLO(),
                        SearchLimits(max_steps=2), highest_tried=32.0)
    assert found["kind"] == "none-found" and "up to 32x" in found["words"] and "--max-steps" in found["words"]
