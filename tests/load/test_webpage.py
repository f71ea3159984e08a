"""The Replay page's bookkeeping (runs, their plan, per-second figures) and its routes, without a Locust process."""

import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flask import Flask, jsonify

from load.checks import Outcome
from load.schedule import COLUMNS, planned_rows
from load.webpage import PageStats, Plan, RunBook, add_replay_page, extend_locust_ui, plan_of


def _stats(sends: list[tuple[float, int]], wrong_at: list[float] = ()) -> PageStats:
    stats = PageStats()
    for lateness_ms, second in sends:
        stats.planned(second)
        stats.record_send("search", lateness_ms, second)
        stats.record_outcome("search", Outcome.OK, second + 0.01)
    for elapsed in wrong_at:
        stats.record_outcome("search", Outcome.WRONG, elapsed)
    return stats


def _report(record, node: str, stats: PageStats) -> None:
    record.take_stats(node, stats.snapshot(), stats.take_seconds())


def test_every_run_is_kept_and_a_late_report_counts_in_its_own_run():
    book = RunBook()
    first = book.begin(speedup=60.0, schedule="s", start_at=100.0, workers=2, planner=lambda: Plan(3, [2, 1]))
    _report(first, "a", _stats([(1.0, 0), (2.0, 0)]))
    book.end(now=110.0)
    second = book.begin(speedup=120.0, schedule="s", start_at=200.0, workers=2, planner=lambda: Plan(3, [3]))
    book.take_stats(1, "b", _stats([(5.0, 1)]).snapshot())  # worker b's last report of run 1 comes late
    book.take_done(1, "a")
    book.take_done(1, "b")
    assert [record.number for record in book.runs] == [1, 2] and book.active is second
    assert first.data()["summary"]["sent"] == 3 and second.data()["summary"]["sent"] == 0
    assert (first.state, second.state) == ("done", "running")
    listing = book.listing()
    assert [(run["number"], run["speedup"], run["started"]) for run in listing] == [(1, 60.0, 100.0), (2, 120.0, 200.0)]
    assert book.data()["run"]["number"] == 2 and book.data(1)["run"]["number"] == 1  # the latest by default
    assert book.data(1)["speedup"] == 60.0 and book.data()["planned_total"] == 3
    book.end(now=210.0)
    assert second.state == "stopped" and book.active is None  # ended before every shard was done
    assert book.data(7)["run"] is None  # no such run
    third = book.begin(speedup=1.0, schedule="nowhere", start_at=300.0)
    third.take_done("master", "this run cannot start: nowhere: no replay schedule")
    assert third.state == "failed" and book.data()["run"]["errors"] == ["this run cannot start: nowhere: no replay schedule"]


def test_an_empty_book_answers_the_page():
    data = RunBook().data()
    assert data["run"] is None and data["runs"] == [] and data["rates"] == [] and data["summary"]["sent"] == 0


def test_rates_per_second_lateness_and_wrong_answers_merged_across_processes():
    book = RunBook()
    record = book.begin(speedup=10.0, schedule="s", start_at=0.0, workers=2, planner=lambda: Plan(5, [2, 0, 3]))
    one = _stats([(1.0, 0), (3.0, 0)], wrong_at=[0.5])
    _report(record, "a", one)
    _report(record, "b", _stats([(50.0, 2), (0.5, 2), (0.5, 2)], wrong_at=[2.2, 2.4]))
    one.record_send("search", 200.0, 2)  # a later report of process a replaces only the seconds it touched
    _report(record, "a", one)
    rows = {row["second"]: row for row in record.data()["rates"]}
    assert [rows[s]["planned"] for s in (0, 1, 2)] == [2, 0, 3]  # from the schedule, ahead of the sends
    assert [rows[s]["sent"] for s in (0, 1, 2)] == [2, 0, 4]
    assert [rows[s]["wrong"] for s in (0, 1, 2)] == [1, 0, 2]
    assert rows[0]["lateness_p50_ms"] == 1.0 and rows[0]["lateness_max_ms"] == 3.0
    assert rows[1]["lateness_p50_ms"] is None  # nothing left in that second: a gap, not a zero
    assert rows[2]["lateness_p50_ms"] == 0.5 and rows[2]["lateness_max_ms"] == 200.0
    assert 190 <= rows[2]["lateness_p99_ms"] <= 200.0  # a 5 % bin's edge, never above the max
    assert record.data()["summary"]["wrong_answers"] == 3


def test_take_seconds_gives_only_what_changed():
    stats = _stats([(1.0, 0)])
    assert set(stats.take_seconds()) == {"0"}
    assert stats.take_seconds() == {}
    stats.record_send("search", 2.0, 3)
    assert set(stats.take_seconds()) == {"3"}


@pytest.fixture
def schedule(tmp_path):
    offsets = [0.0, 0.4, 1.0, 5.5, 9.0, 9.99]
    columns = {name: [f"{name}{i}" for i in range(len(offsets))] for name in COLUMNS}
    columns["offset_s"], columns["size_bytes"] = offsets, [100] * len(offsets)
    pq.write_table(pa.table(columns), tmp_path / "schedule.parquet")
    return tmp_path


@pytest.mark.parametrize("limit_s", [None, 5.0, 10.0, 25.0, 30.0])
def test_the_plan_counts_what_the_replay_sends(schedule, limit_s):
    plan = plan_of(schedule, 10.0, limit_s, speedup=2.0)
    assert plan.total == planned_rows(schedule, 10.0, limit_s) == sum(plan.per_second)
    if limit_s is None:
        assert plan.per_second == [3, 0, 1, 0, 2]  # offsets ÷ 2, binned by the second they are due


def _client(book):
    app = Flask(__name__)

    @app.route("/")
    def index():
        return "<html><body><div id='root'></div></body></html>"

    @app.route("/stats/requests")
    def stats():
        return jsonify({"stats": [], "state": "running"})

    web_ui = SimpleNamespace(app=app, template_args={})
    add_replay_page(app, book)
    extend_locust_ui(web_ui, book)
    return app.test_client(), web_ui


def test_routes_serve_the_page_plotly_and_each_run():
    book = RunBook()
    book.begin(speedup=60.0, schedule="s", start_at=1.0, planner=lambda: Plan(2, [2]))
    book.begin(speedup=120.0, schedule="s", start_at=2.0, planner=lambda: Plan(2, [1, 1]))
    client, web_ui = _client(book)
    page = client.get("/replay/").get_data(as_text=True)
    for needed in ('id="sent"', 'id="planned-total"', 'id="chart"', "data-points", 'id="run"',
                   'src="plotly.min.js"', 'id="lateness-chart"', 'id="failures-chart"', 'id="operations"'):
        assert needed in page
    plotly = client.get("/replay/plotly.min.js")
    assert plotly.status_code == 200 and b"plotly.js" in plotly.get_data()[:200]  # served here: no CDN
    assert [run["speedup"] for run in client.get("/replay/runs").get_json()] == [60.0, 120.0]
    assert client.get("/replay/data?run=1").get_json()["speedup"] == 60.0
    assert client.get("/replay/data").get_json()["run"]["number"] == 2


def test_locust_ui_gains_a_replay_tab_a_link_and_the_form_script():
    book = RunBook()
    book.begin(speedup=60.0, schedule="s", start_at=1.0, planner=lambda: Plan(2, [2]))
    client, web_ui = _client(book)
    assert web_ui.template_args["extended_tabs"] == [{"title": "Replay", "key": "replay"},
                                                     {"title": "Lateness", "key": "lateness"}]
    assert web_ui.template_args["extended_csv_files"][0]["href"] == "/replay/"
    stats = json.loads(client.get("/stats/requests").get_data())
    assert stats["state"] == "running"  # Locust's own answer kept
    [replay, lateness] = stats["extended_stats"]
    assert lateness["key"] == "lateness" and lateness["data"][-1]["name"] == "Aggregated"
    assert replay["key"] == "replay" and replay["data"][0]["run"] == "run 1" and replay["data"][0]["speedup"] == "60×"
    index = client.get("/").get_data(as_text=True)
    assert '<script src="/replay/locust-ui.js"></script></body>' in index
    script = client.get("/replay/locust-ui.js").get_data(as_text=True)
    assert "segur-replay-link" in script and "speedup" in script
    assert "userCount" in client.get("/replay/locust-ui.css").get_data(as_text=True)


def _lateness_rows(client) -> list[dict]:
    """The rows of the "Lateness" tab in Locust's ``/stats/requests`` answer."""
    extended = json.loads(client.get("/stats/requests").get_data())["extended_stats"]
    [lateness] = [entry for entry in extended if entry["key"] == "lateness"]
    return lateness["data"]


def test_the_lateness_tab_has_the_latest_runs_rows_per_operation_updated_with_locusts_statistics():
    book = RunBook()
    client, web_ui = _client(book)
    assert _lateness_rows(client) == []  # no run yet
    record = book.begin(speedup=60.0, schedule="s", start_at=1.0, workers=2, planner=lambda: Plan(4, [4]))
    a, b = PageStats(), PageStats()
    for stats, operation, lateness_ms in ((a, "search", 1.0), (a, "deposit", 30.0), (b, "search", 3.0)):
        stats.record_send(operation, lateness_ms, 0)
        stats.leaving(operation)
    b.record_send("retrieve", 0.5, 0)
    b.record_not_sent("retrieve", 0.5, 0)
    _report(record, "a", a)
    _report(record, "b", b)
    table = _lateness_rows(client)
    rows = {row["name"]: row for row in table}
    assert [row["name"] for row in table] == ["deposit", "retrieve", "search", "Aggregated"]
    assert (rows["search"]["type"], rows["search"]["sent"], rows["search"]["lateness_max_ms"]) == ("GET", 2, 3.0)
    assert (rows["search"]["in_flight"], rows["search"]["in_flight_max"]) == (2, 2)  # one in each process
    assert (rows["retrieve"]["sent"], rows["retrieve"]["not_sent"], rows["retrieve"]["lateness_p50_ms"]) == (0, 1, None)
    assert (rows["Aggregated"]["sent"], rows["Aggregated"]["lateness_max_ms"]) == (3, 30.0)
    # every column of the tab's table is in every row (Locust shows an empty cell for a missing key)
    [structure] = [extended["structure"] for extended in web_ui.template_args["extended_tables"]
                   if extended["key"] == "lateness"]
    assert [column["title"] for column in structure][:2] == ["Type", "Name"]
    assert all(column["key"] in row for column in structure for row in table)
    a.answered("search")  # the next poll shows the next report
    _report(record, "a", a)
    assert {row["name"]: row["in_flight"] for row in _lateness_rows(client)}["search"] == 1
