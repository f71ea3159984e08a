"""The outage what-if's recovery surge: which stretch is replayed, at what rate, and when it is not."""

import datetime as dt

import numpy as np
import pytest

from planner import outage, recovery
from simulator.scenario import load_scenario

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_the_replayed_stretch_fits_the_wall_clock_budget():
    assert recovery.window_minutes(250.0) == 60          # a 1/250 sample: an hour replays in 14.4 s
    assert recovery.window_minutes(10.0) == 5            # 5 min at 10x: 30 s
    assert recovery.window_minutes(1.0) == 1             # the nation at 1x: one minute, the least
    assert all(recovery.window_minutes(x) * 60 / x <= recovery.WALL_S + 60 / x for x in (1, 3, 7, 50, 500, 1e6))


def test_the_busiest_stretch_after_the_recovery_is_found():
    arrivals = np.zeros(500)
    arrivals[100:110] = 5.0
    arrivals[300:305] = 50.0         # the surge's peak
    arrivals[50:60] = 1000.0         # before the recovery: not a candidate
    assert outage._busiest(arrivals, 90, 400, 5) == 300
    assert 295 <= outage._busiest(arrivals, 90, 400, 10) <= 300   # any 10 minutes holding the peak
    assert outage._busiest(arrivals, 90, 98, 5) == 98     # it may only start within [first, last]


def test_the_surge_window_follows_the_recovery_and_holds_its_traffic():
    scenario = load_scenario(ROOT / "scenarios" / "smoke.yaml")
    start = dt.datetime(2025, 10, 14, 16, 30)
    drain = outage.outage_drain(scenario, start, 2.0, capacity_rps=400.0, window_minutes=15)
    surge = drain["surge_window"]
    assert drain["recovered_at"] == "2025-10-14T18:30:00"
    assert surge["minutes"] == 15 and surge["start"] >= drain["recovered_at"]
    assert 0 < surge["national_rps"] <= drain["surge_peak_rps"]
    later = dt.datetime.fromisoformat(surge["start"]) - dt.datetime.fromisoformat(drain["recovered_at"])
    assert later <= dt.timedelta(minutes=drain["connectors_drain_minutes"] + 60)


@pytest.mark.parametrize("capacity, multiple, skipped", [(0.0, 1.0, True), (100.0, 1.0, False), (100.0, 2.0, False),
                                                         (100.0, 2.1, True), (100.0, 100.0, True)])
def test_a_surge_far_beyond_the_capacity_is_not_replayed(capacity, multiple, skipped):
    drain = {"capacity_rps": capacity, "surge_window": {"national_rps": 100.0}}
    reason = recovery.hopeless(drain, multiple)
    assert (reason is not None) == skipped
    if skipped:
        assert "does not hold" in reason


def test_a_surge_that_does_not_fit_the_disk_left_is_not_replayed(tmp_path):
    scenario = load_scenario(ROOT / "scenarios" / "smoke.yaml")
    start = dt.datetime(2025, 10, 14, 16, 30)
    drain = outage.outage_drain(scenario, start, 1.0, capacity_rps=400.0, window_minutes=20)

    class _NoService:  # the check comes before the service is touched
        def __getattr__(self, name):
            raise AssertionError(f"the service was used ({name}) though the surge cannot fit")

    lines = []
    result = recovery.replay_surge(scenario, drain, _NoService(), tmp_path, None, 250.0, 1, "t", lines.append,
                                   disk_left=1000)
    assert set(result) == {"window", "skipped"} and "--max-disk-gb" in result["skipped"]
    assert any("not replayed" in line for line in lines)
