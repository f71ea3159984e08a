"""A plan step with wrong answers does not hold, and the plan says why (plan.json, verdict, exit code)."""

import shutil
from pathlib import Path

from planner.plan import SearchLimits, _bottleneck, plan
from planner.service import Service
from planner.steps import SLO, Step
from tests.load.fake_fhir import fake_fhir


def _step(**changes) -> Step:
    figures = dict(speedup=4.0, offered_rps=100.0, achieved_rps=100.0, p50_ms=2.0, p99_ms=10.0, error_rate=0.0,
                   lateness_p99_ms=1.0, requests=800, failures=0, planned=800, sent=800, unanswered=0, wall_s=8.0,
                   service_cpu_cores=0.2, service_busiest_process_cores=0.1, other_cpu_cores=0.0,
                   driver_cpu_cores=0.1, folder="steps/01-4x")
    return Step(**{**figures, **changes})


def test_a_step_with_wrong_answers_does_not_hold_whatever_its_error_rate():
    fine, wrong = _step(), _step(wrong_answers=3, failures=3, wrong_answers_by_operation={"search": 3})
    fine.judge(SLO())
    wrong.judge(SLO(max_error_rate=0.05))  # 3 of 800 is within the error rate
    assert fine.holds and not fine.broken
    assert not wrong.holds and wrong.broken == ["3 wrong answers (search 3)"]


def test_wrong_answers_come_first_among_the_limits():
    step = _step(wrong_answers=5, wrong_answers_by_operation={"retrieve": 5}, p99_ms=900.0, service_cpu_cores=1.9)
    found = _bottleneck(step, Service(Path("."), Path("key"), url="http://127.0.0.1:9"), SLO(), SearchLimits())
    assert found["kind"] == "wrong-answers" and "retrieve 5" in found["words"]


def test_a_plan_against_a_service_answering_another_patients_documents_does_not_hold(smoke_run, tmp_path):
    lines: list[str] = []
    with fake_fhir("search") as target, Service(tmp_path / "service", tmp_path / "key", url=target) as service:
        run = tmp_path / "run"  # the session's simulation, without what other packages' replays wrote into it
        shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("locations.parquet", "load-*"))
        # the fake speaks FHIR only: professionals over PDSm4DMP
        result = plan(run, tmp_path, service, SLO(), SearchLimits(step_seconds=3.0, max_steps=3), lines.append,
                      protocol="fhir")
    wrong = [step for step in result["steps"] if step["wrong_answers"]]
    assert wrong and all(not step["holds"] and "wrong answers (search" in step["broken"][0] for step in wrong)
    assert result["wrong_answers"] == sum(step["wrong_answers"] for step in wrong) > 0
    assert result["wrong_answers_by_operation"] == {"search": result["wrong_answers"]}
    assert not result["holds_scenario"] and not result["holds"] and result["bottleneck"] == "wrong-answers"
    assert result["verdict"].startswith("DOES NOT HOLD the national") and "wrong answers (search" in result["verdict"]
