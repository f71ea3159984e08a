"""The record service's CPU per call, read from its ``/metrics`` (Prometheus text), without its code.

The service attributes each worker's CPU time to the requests in flight by fair share (the method and its
limits: ``record_service/cpu_share.py``) and exposes, summed over its workers:

- ``segur_request_cpu_seconds_total{route, call}``: CPU seconds attributed to the finished requests of a call;
- ``segur_calls_total{call}``: those requests;
- ``segur_unattributed_cpu_seconds_total``: CPU seconds spent while no request was in flight.

``call`` names the call type in the field's terms: ``ITI-65``, ``ITI-67``, ``ITI-68``, ``TD0.2 (FHIR)``,
``AuditEvent``, ``$mask``, ``$block``, ``DELETE``, ``ITI-41``, ``ITI-43``, ``TD0.2``,
``ITI-18 FindDocuments`` (and the other stored queries)…, else the route template (``/metrics``…).

Counters only grow while the service runs: read ``/metrics`` before and after a step and take the
difference (:func:`cpu_per_call_us`). A figure per call is an attribution (requests that overlap share
the CPU equally); the sum over calls is exact. Only prometheus_client is imported here, never
``record_service``: the planner and the load generator run apart from the service.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

CPU_FAMILY = "segur_request_cpu_seconds"
CALLS_FAMILY = "segur_calls"
UNATTRIBUTED_FAMILY = "segur_unattributed_cpu_seconds"


def cpu_by_call(exposition_text: str) -> dict[str, tuple[float, int]]:
    """call -> (CPU seconds attributed, requests answered) in one ``/metrics`` text (summed over routes)."""
    cpu: dict[str, float] = {}
    calls: dict[str, int] = {}
    for family in text_string_to_metric_families(exposition_text):
        if family.name == CPU_FAMILY:
            for sample in family.samples:
                if sample.name == CPU_FAMILY + "_total":
                    call = sample.labels.get("call", "")
                    cpu[call] = cpu.get(call, 0.0) + sample.value
        elif family.name == CALLS_FAMILY:
            for sample in family.samples:
                if sample.name == CALLS_FAMILY + "_total":
                    call = sample.labels.get("call", "")
                    calls[call] = calls.get(call, 0) + round(sample.value)
    return {call: (cpu.get(call, 0.0), calls.get(call, 0)) for call in sorted(cpu.keys() | calls.keys())}


def unattributed_cpu_s(exposition_text: str) -> float:
    """The service's CPU seconds spent while no request was in flight (summed over its workers)."""
    for family in text_string_to_metric_families(exposition_text):
        if family.name == UNATTRIBUTED_FAMILY:
            return sum(s.value for s in family.samples if s.name == UNATTRIBUTED_FAMILY + "_total")
    return 0.0


def cpu_per_call_us(before: str | dict[str, tuple[float, int]],
                    after: str | dict[str, tuple[float, int]]) -> dict[str, dict]:
    """Per call, between two reads of ``/metrics`` (texts, or :func:`cpu_by_call` of them): ``calls`` (requests
    answered), ``cpu_s`` (CPU seconds), ``cpu_us_per_call`` (CPU µs per request) and
    ``share`` (its fraction of all the CPU attributed to calls in between, 0 to 1). Calls without requests in
    between are left out. A service restarted in between (its counters below ``before``) counts from zero."""
    first = cpu_by_call(before) if isinstance(before, str) else before
    last = cpu_by_call(after) if isinstance(after, str) else after
    deltas: dict[str, tuple[float, int]] = {}
    for call, (cpu_s, count) in last.items():
        cpu_0, count_0 = first.get(call, (0.0, 0))
        if count < count_0 or cpu_s < cpu_0:  # a restart: the counters started again
            cpu_0, count_0 = 0.0, 0
        if count > count_0:
            deltas[call] = (max(cpu_s - cpu_0, 0.0), count - count_0)
    total = sum(cpu_s for cpu_s, _ in deltas.values())
    return {call: {"calls": count, "cpu_s": cpu_s, "cpu_us_per_call": cpu_s / count * 1e6,
                   "share": cpu_s / total if total > 0 else 0.0}
            for call, (cpu_s, count) in deltas.items()}
