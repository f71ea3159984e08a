"""CPU per call: the fair-share arithmetic (record_service.cpu_share), the parser a client reads it with
(load.service_metrics), and a running service of two workers answering a burst of mixed calls."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from identity.structure import load_or_create_structure
from identity.vihf import issue_assertion
from load.service_metrics import cpu_by_call, cpu_per_call_us, unattributed_cpu_s
from record_service.cpu_share import CpuShare, call_of
from record_service.metrics import Metrics
from record_service.xds import terms
from record_service.xds.terms import NS, q
from tests.record_service.conftest import Service
from tests.record_service.record_documents import make_ins, professional
from tests.record_service.xds import messages


class Clock:
    """A process CPU clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


# --- the arithmetic ---------------------------------------------------------------------------

def test_sequential_requests_get_their_own_cpu_and_idle_time_is_unattributed():
    clock, idle = Clock(), []
    share = CpuShare(clock, on_idle=idle.append)
    clock.spend(0.5)  # start-up: before any request
    a = share.start()
    clock.spend(0.010)
    assert share.end(a) == pytest.approx(0.010)
    clock.spend(0.002)  # housekeeping between requests
    b = share.start()
    clock.spend(0.003)
    assert share.end(b) == pytest.approx(0.003)
    assert share.unattributed == pytest.approx(0.502)
    assert idle == pytest.approx([0.5, 0.002])
    assert share.in_flight == 0


def test_two_overlapping_requests_share_what_they_overlap():
    clock = Clock()
    share = CpuShare(clock)
    a = share.start()
    clock.spend(0.004)                 # a alone: 4 ms to a
    b = share.start()
    clock.spend(0.006)                 # both: 3 ms each
    cpu_a = share.end(a)
    clock.spend(0.001)                 # b alone: 1 ms to b
    cpu_b = share.end(b)
    assert cpu_a == pytest.approx(0.007)
    assert cpu_b == pytest.approx(0.004)
    assert share.unattributed == 0.0


def test_three_nested_requests_and_the_sum_is_the_process_cpu():
    clock = Clock()
    share = CpuShare(clock)
    a = share.start()
    clock.spend(0.003)
    b = share.start()
    clock.spend(0.004)
    c = share.start()
    clock.spend(0.006)                 # a, b, c: 2 ms each
    cpu_b = share.end(b)
    clock.spend(0.002)                 # a, c: 1 ms each
    cpu_c = share.end(c)
    cpu_a = share.end(a)               # nothing since c ended
    assert (cpu_a, cpu_b, cpu_c) == pytest.approx((0.003 + 0.002 + 0.002 + 0.001, 0.002 + 0.002, 0.002 + 0.001))
    assert cpu_a + cpu_b + cpu_c + share.unattributed == pytest.approx(clock.now)


def test_the_sum_over_requests_plus_unattributed_is_the_process_cpu_with_the_real_clock():
    share = CpuShare()  # time.process_time, from the process's start
    tokens, spent = [], 0.0
    for i in range(200):  # requests overlapping in a changing pattern, some CPU between each event
        if i % 3 != 2 or not tokens:
            tokens.append(share.start())
        else:
            spent += share.end(tokens.pop(i % len(tokens)))
        sum(range(2000))
    while tokens:
        spent += share.end(tokens.pop())
    assert spent > 0 and share.in_flight == 0
    # exact at the last event, up to float rounding
    assert spent + share.unattributed == pytest.approx(share._last, abs=1e-9)
    assert share._last <= time.process_time()


def test_calls_are_named_by_endpoint_then_route_then_template():
    assert call_of({}, "/", "POST") == "ITI-65"
    assert call_of({}, "/DocumentReference", "GET") == "ITI-67"
    assert call_of({}, "/Binary/{id}", "GET") == "ITI-68"
    assert call_of({}, "/Patient", "GET") == "TD0.2 (FHIR)"
    assert call_of({}, "/DocumentReference/{id}", "DELETE") == "DELETE"
    assert call_of({}, "/DocumentReference/{id}", "GET") == "/DocumentReference/{id}"
    assert call_of({}, "/xds/td02", "POST") == "TD0.2"
    assert call_of({"segur.call": "ITI-18 FindDocuments"}, "/xds/iti18", "POST") == "ITI-18 FindDocuments"


def test_the_metrics_expose_cpu_calls_and_unattributed_and_the_parser_reads_them():
    metrics = Metrics()
    before = metrics.exposition().decode()
    metrics.observe_request("/xds/iti18", "POST", 200, 0.01, "ITI-18 FindDocuments", 0.002)
    metrics.observe_request("/xds/iti18", "POST", 200, 0.01, "ITI-18 FindDocuments", 0.004)
    metrics.observe_request("/", "POST", 201, 0.05, None, 0.03)
    metrics.observe_request("/DocumentReference/_search", "POST", 200, 0.01, None, 0.001)
    metrics.observe_request("/DocumentReference", "GET", 200, 0.01, None, 0.002)
    metrics.unattributed_cpu.inc(0.25)
    after = metrics.exposition().decode()
    assert 'segur_request_cpu_seconds_total{call="ITI-18 FindDocuments",route="/xds/iti18"} 0.006' in after
    assert 'segur_calls_total{call="ITI-65"} 1.0' in after
    assert 'segur_requests_total{method="POST",route="/",status="201"} 1.0' in after  # unchanged
    by_call = cpu_by_call(after)
    assert by_call["ITI-18 FindDocuments"] == (pytest.approx(0.006), 2)
    assert by_call["ITI-65"] == (pytest.approx(0.03), 1)
    assert by_call["ITI-67"] == (pytest.approx(0.003), 2)  # two routes, one call
    assert unattributed_cpu_s(after) - unattributed_cpu_s(before) == pytest.approx(0.25)
    per_call = cpu_per_call_us(before, after)
    assert set(per_call) == {"ITI-18 FindDocuments", "ITI-65", "ITI-67"}
    assert per_call["ITI-18 FindDocuments"]["calls"] == 2
    assert per_call["ITI-18 FindDocuments"]["cpu_us_per_call"] == pytest.approx(3000)
    assert per_call["ITI-65"]["cpu_us_per_call"] == pytest.approx(30000)
    assert per_call["ITI-65"]["share"] == pytest.approx(0.03 / 0.039)
    assert sum(c["share"] for c in per_call.values()) == pytest.approx(1.0)


def test_the_parser_takes_dicts_and_a_restart_counts_from_zero():
    before = {"ITI-67": (2.0, 1000), "ITI-65": (1.0, 10)}
    after = {"ITI-67": (0.5, 100), "ITI-65": (1.5, 20), "ITI-68": (0.1, 50)}  # ITI-67's counters restarted
    per_call = cpu_per_call_us(before, after)
    assert per_call["ITI-67"]["calls"] == 100 and per_call["ITI-67"]["cpu_us_per_call"] == pytest.approx(5000)
    assert per_call["ITI-65"]["calls"] == 10 and per_call["ITI-65"]["cpu_us_per_call"] == pytest.approx(50000)
    assert per_call["ITI-68"]["cpu_us_per_call"] == pytest.approx(2000)
    assert cpu_per_call_us(after, after) == {}


# --- a running service ------------------------------------------------------------------------

def _worker_cpu_s(main_pid: int) -> float:
    """The CPU seconds (user + system, all threads) of the service's processes below ``main_pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, list(children.get(main_pid, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _post_soap(service: Service, path: str, action: str, body: etree._Element, assertion: bytes) -> int:
    request = urllib.request.Request(service.url + path, data=messages.envelope(action, body, assertion), method="POST",
                                     headers={"Content-Type": "application/soap+xml; charset=UTF-8"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            payload = answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        return error.code
    envelope = etree.fromstring(payload)
    response = envelope.find(q("soap", "Body"))[0]
    outcome = response if response.get("status") else response.find(q("rs", "RegistryResponse"))
    assert outcome is None or outcome.get("status") == terms.SUCCESS, payload[:500]
    return status


def _scrape(service: Service) -> str:
    with urllib.request.urlopen(service.url + "/metrics", timeout=30) as answer:
        return answer.read().decode()


@pytest.fixture
def two_worker_service(tmp_path) -> Service:
    service = Service(tmp_path, None, "--workers", "2").start()
    try:
        yield service
    finally:
        service.stop()


def test_a_burst_of_mixed_calls_is_counted_per_call_and_a_deposit_costs_more_than_an_access_check(
        two_worker_service, rng):
    service = two_worker_service
    actor, ins = professional(rng), make_ins(rng)
    token = service.token(actor)
    assertion = issue_assertion(load_or_create_structure(service.key_file), actor, ins, "normal")
    search = f"/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}"

    def fhir_search(_):
        reply = service.call("GET", search, token)
        assert reply.status == 200, reply
        return 200

    def xds_find(_):
        return _post_soap(service, "/xds/iti18", terms.ITI18, messages.find_documents(ins), assertion)

    def access_check(_):
        return _post_soap(service, "/xds/td02", terms.TD02, etree.Element(q("segur", "TD02Request"),
                                                                          nsmap={"segur": NS["segur"]}), assertion)

    def deposit(i):
        data = b"%PDF-1.4 " + rng.randbytes(1_000_000)
        body = messages.provide_and_register(ins, actor.rpps, actor.finess,
                                             [(f"1.2.250.1.999.{rng.randint(1, 10**9)}.{time.time_ns()}.{i}", data)])
        return _post_soap(service, "/xds/iti41", terms.ITI41, body, assertion)

    before = _scrape(service)
    searches, finds = 60, 60
    with ThreadPoolExecutor(8) as pool:  # overlapping requests on both workers
        statuses = list(pool.map(lambda i: fhir_search(i) if i % 2 else xds_find(i), range(searches + finds)))
    assert statuses == [200] * (searches + finds)
    deposits, checks = 4, 30  # one at a time: each call's CPU its own
    assert [deposit(i) for i in range(deposits)] == [200] * deposits
    assert [access_check(i) for i in range(checks)] == [200] * checks
    after = _scrape(service)

    per_call = cpu_per_call_us(before, after)
    assert {call: figures["calls"] for call, figures in per_call.items()} == {
        "ITI-67": searches, "ITI-18 FindDocuments": finds, "ITI-41": deposits, "TD0.2": checks,
        "/metrics": 1}  # the first scrape, answered before it was read
    assert all(figures["cpu_s"] > 0 for figures in per_call.values()), per_call
    assert per_call["ITI-41"]["cpu_us_per_call"] > 3 * per_call["TD0.2"]["cpu_us_per_call"], per_call
    assert per_call["ITI-41"]["cpu_us_per_call"] > per_call["ITI-67"]["cpu_us_per_call"], per_call
    assert sum(figures["share"] for figures in per_call.values()) == pytest.approx(1.0)
    assert per_call["ITI-41"]["cpu_us_per_call"] > 1000  # 1 MB parsed, hashed, written: more than a ms

    # attributed + unattributed is the workers' CPU (as of each worker's last request; /proc counts ticks)
    attributed = sum(cpu for cpu, _ in cpu_by_call(after).values())
    accounted = attributed + unattributed_cpu_s(after)
    measured = _worker_cpu_s(service.proc.pid)
    assert 0.5 * measured < accounted < 1.1 * measured + 0.1, (accounted, measured)
