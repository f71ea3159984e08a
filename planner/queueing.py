"""An analytic cross-check: where should the service break, given what one light step measured?

The service is an asynchronous server: what requests queue for is the CPU. Each request costs
CPU seconds in the service and in the load driver (they share this machine's cores), measured
as the slope of cores busy against offered rate over the steps that held. That is an M/M/c
queue with ``c`` = cores and service time = CPU seconds per request:

- **queueing**: the predicted p99 is the lowest measured p99 plus the p99 of the wait for a
  core (Erlang C); the knee is where that wait uses up the SLO's margin (latency or lateness).
- **CPU**: where service and driver would need 90 % of the cores.

Before two steps give a CPU slope, the model falls back to the service's workers as servers and
the measured mean response time as service time (cruder; replaced as soon as it can be).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_c(servers: int, offered_erlangs: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (1 when saturated)."""
    if offered_erlangs >= servers:
        return 1.0
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= offered_erlangs / k
        total += term
    last = term * offered_erlangs / servers / (1 - offered_erlangs / servers)
    return last / (total + last)


def wait_quantile_s(servers: int, rate: float, service_s: float, quantile: float) -> float:
    """The ``quantile`` of the waiting time in an M/M/c queue (infinite when saturated)."""
    capacity = servers / service_s
    if rate >= capacity:
        return math.inf
    waits = erlang_c(servers, rate * service_s)
    if waits <= 1 - quantile:
        return 0.0
    return math.log(waits / (1 - quantile)) / (capacity - rate)


@dataclass(frozen=True)
class Model:
    base_speedup: float          # the step the model was fed with
    base_rps: float              # its offered rate
    service_s: float             # mean response time at that load
    base_p99_s: float
    servers: int
    cpu_s_per_request: float     # service + driver CPU per request, when known
    cores: int

    def predicted_p99_ms(self, speedup: float) -> float:
        rate = self.base_rps * speedup / self.base_speedup
        return (self.base_p99_s + wait_quantile_s(self.servers, rate, self.service_s, 0.99)) * 1000

    def cpu_knee(self, busy: float = 0.9) -> float:
        if self.cpu_s_per_request <= 0:
            return math.inf
        return busy * self.cores / self.cpu_s_per_request / self.base_rps * self.base_speedup

    def queue_knee(self, slo_p99_ms: float, ceiling: float = 1e6) -> float:
        """The speed-up where the predicted p99 reaches the SLO (bisection in log space)."""
        low, high = self.base_speedup, ceiling
        if self.predicted_p99_ms(low) > slo_p99_ms:
            return low
        if self.predicted_p99_ms(high) <= slo_p99_ms:
            return high
        for _ in range(60):
            middle = math.sqrt(low * high)
            if self.predicted_p99_ms(middle) <= slo_p99_ms:
                low = middle
            else:
                high = middle
        return low

    def knee(self, slo_p99_ms: float, lateness_p99_ms: float | None = None) -> tuple[float, str]:
        """The predicted knee and what sets it; waiting shows as latency and, in the driver, as lateness."""
        margin_ms = slo_p99_ms
        if lateness_p99_ms is not None:  # the p99 budget left above the low-load p99, or the lateness budget
            margin_ms = min(slo_p99_ms, self.base_p99_s * 1000 + lateness_p99_ms)
        queue, cpu = self.queue_knee(margin_ms), self.cpu_knee()
        return (queue, f"queueing for the CPU (M/M/{self.servers})") if queue <= cpu else (cpu, "CPU (90 % of the cores)")
