import math

import pytest

from planner.queueing import Model, erlang_c, wait_quantile_s


def test_erlang_c_matches_closed_forms():
    assert erlang_c(1, 0.6) == pytest.approx(0.6)                     # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)                   # M/M/2 at a = 1: 1/3
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(4, 0.0) == 0.0


def test_wait_quantile_of_mm1():
    rate, service = 8.0, 0.1  # rho 0.8, mu 10
    expected = math.log(0.8 / 0.01) / (10 - 8)
    assert wait_quantile_s(1, rate, service, 0.99) == pytest.approx(expected)
    assert wait_quantile_s(1, 10.0, service, 0.99) == math.inf
    assert wait_quantile_s(4, 1.0, 0.1, 0.99) == 0.0                  # almost nobody waits


def test_knees():
    model = Model(base_speedup=1, base_rps=10, service_s=0.01, base_p99_s=0.02, servers=2, cpu_s_per_request=0.01,
                  cores=2)
    assert model.cpu_knee() == pytest.approx(18)                       # 90 % of 2 cores at 0.01 s per request
    knee = model.queue_knee(500)
    assert model.predicted_p99_ms(knee) <= 500 < model.predicted_p99_ms(knee * 1.01)
    assert knee < 20                                                   # never beyond saturation (200 req/s)
    speedup, limit = model.knee(500, lateness_p99_ms=100)
    assert speedup == min(model.queue_knee(20 + 100), model.cpu_knee()) and limit
