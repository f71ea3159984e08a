"""The "Replay" page in Locust's web UI, and the runs it shows.

Locust's own charts show requests per second and response times; they cannot show whether the
service keeps up with the *scenario*. This page can: for every run started in this Locust
process (the current one first, earlier ones in a select box) it draws, with plotly.js (served
from the ``plotly`` package: the machines running a replay may have no internet),

- the planned rate (read from the schedule when the run starts) against the rate actually sent
  and the rate answered OK, in requests per second against seconds since the run's start;
- the lateness (how late requests left: p50, p99 and max of each second), in ms;
- failures and wrong answers per second;

and, per operation (as Locust's Statistics table names its requests), the requests sent and not sent,
their lateness (p50, p99, max) and how many were in flight, now and at most.

It polls ``/replay/data?run=N`` every second (the run's figures as JSON); ``/replay/runs`` lists
the runs. :func:`extend_locust_ui` adds two tabs to Locust's own UI (through its ``extended_tabs`` /
``extended_stats``): "Replay", a table of the runs, and "Lateness", the latest run's lateness and requests
in flight with a row for each row of Locust's Statistics table (which cannot take columns of ours). It
links to this page from Locust's header and from its "Download Data" tab, and makes the start form lead
with the speed-up (users and ramp-up do not apply to a replay: they are hidden, and the form says so).

Nothing here imports Locust: the bookkeeping (:class:`RunBook`, :class:`RunRecord`,
:class:`PageStats`) is plain Python, tested without a Locust process.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq
from flask import Blueprint, Response, jsonify, request, send_file

from load.checks import Outcome
from load.schedule import replayed_offsets
from load.stats import (LATENESS_KEYS, OPERATION_COLUMNS, LatenessHistogram, ReplayStats, lateness_bin,
                        lateness_figures)


# --- what a process measures for the page, beside ReplayStats ------------------------------------

class PageStats(ReplayStats):
    """A process's replay figures, plus, for each second since the run's start, its lateness (a sparse
    histogram, sent only for the seconds touched since the last report) and its wrong answers."""

    def __init__(self) -> None:
        super().__init__()
        self.by_second: dict[int, dict] = {}
        self._touched: set[int] = set()

    def _second(self, second: int) -> dict:
        self._touched.add(second)
        entry = self.by_second.get(second)
        if entry is None:
            entry = self.by_second[second] = {"lateness": {}, "max": 0.0, "wrong": 0}
        return entry

    def _late(self, second: int, lateness_ms: float, count: int) -> None:
        entry = self._second(second)
        index = str(lateness_bin(lateness_ms))
        entry["lateness"][index] = entry["lateness"].get(index, 0) + count
        if count > 0:
            entry["max"] = max(entry["max"], lateness_ms)

    def record_send(self, operation: str, lateness_ms: float, second: int, label: str | None = None) -> None:
        super().record_send(operation, lateness_ms, second, label)
        self._late(second, lateness_ms, 1)

    def record_not_sent(self, operation: str, lateness_ms: float, second: int, label: str | None = None) -> None:
        super().record_not_sent(operation, lateness_ms, second, label)
        self._late(second, lateness_ms, -1)

    def record_outcome(self, operation: str, ok, elapsed_s: float) -> None:
        super().record_outcome(operation, ok, elapsed_s)
        if ok is Outcome.WRONG:
            self._second(int(elapsed_s))["wrong"] += 1

    def take_seconds(self) -> dict[str, dict]:
        """The seconds touched since the last call, whole (a receiver replaces what it had for them)."""
        touched = {str(second): self.by_second[second] for second in sorted(self._touched)}
        self._touched = set()
        return touched


# --- the plan of a run -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What a run is to send: rows in all, and rows due in each second since its start (wall clock)."""
    total: int
    per_second: list[int]


def plan_of(path: str | Path, window_s: float, limit_s: float | None, speedup: float, protocol: str = "dmp") -> Plan:
    """The rows :func:`load.schedule.replay_rows` yields over all shards, binned by the wall-clock second
    they are due (offset ÷ speed-up): the window once, or again and again up to ``limit_s`` scenario seconds."""
    offsets = replayed_offsets(path, protocol)
    passes = []
    cycle = 0
    while True:
        shifted = offsets + cycle * window_s
        if limit_s is not None:
            shifted = shifted[shifted < limit_s]
        passes.append(shifted)
        cycle += 1
        if limit_s is None or window_s <= 0 or cycle * window_s >= limit_s:
            break
    due = np.concatenate(passes) if passes else np.zeros(0)
    if due.size == 0:
        return Plan(0, [])
    seconds = np.floor(due / speedup).astype(np.int64)
    return Plan(int(due.size), np.bincount(np.maximum(seconds, 0)).tolist())


_NOTHING = {"wrong": 0, **dict.fromkeys(LATENESS_KEYS)}


# --- the runs of a Locust process --------------------------------------------------------------------

@dataclass
class RunRecord:
    """One run started in this Locust process (from the web form, or headless), with what every
    process sent for it. Workers' reports carry the run's number, so a late one never counts in another run."""
    number: int
    speedup: float
    schedule: str
    start_at: float                  # wall-clock time the first row is due
    workers: int = 1
    window_s: float = 0.0
    limit_s: float | None = None     # scenario seconds replayed, None for one pass over the window
    planner: Callable[[], Plan] | None = None
    snapshots: dict[str, dict] = field(default_factory=dict)             # node -> its ReplayStats snapshot
    seconds: dict[str, dict[str, dict]] = field(default_factory=dict)    # node -> second -> PageStats entry
    done: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    ended_at: float | None = None
    _plan: Plan | None = None
    _by_second: dict[int, dict] = field(default_factory=dict)  # merged figures of each second, kept up to date
    _dirty: set[int] = field(default_factory=set)              # seconds some report changed since
    _merged: ReplayStats | None = None                         # the snapshots merged, until the next report

    def plan(self) -> Plan | None:
        if self._plan is None and self.planner is not None:
            self._plan = self.planner()
        return self._plan

    def take_stats(self, node: str, stats: dict, seconds: dict | None = None) -> None:
        self.snapshots[node] = stats
        self._merged = None
        if seconds:
            self.seconds.setdefault(node, {}).update(seconds)
            self._dirty.update(int(second) for second in seconds)

    def take_done(self, node: str, error: str | None = None) -> None:
        self.done.add(node)
        if error:
            self.errors.append(error)

    def finished(self) -> bool:
        return len(self.done) >= self.workers

    @property
    def state(self) -> str:
        if self.finished():
            return "failed" if self.errors else "done"
        return "running" if self.ended_at is None else "stopped"

    def merged(self) -> ReplayStats:
        """Every process's latest figures merged, once per report: the page, Locust's tabs and the runs' list
        poll every second or two, and a finished run's figures never change."""
        if self._merged is None:
            self._merged = ReplayStats.from_snapshots(list(self.snapshots.values()))
        return self._merged

    def describe(self) -> dict:
        plan = self._plan
        return {"number": self.number, "speedup": self.speedup, "started": self.start_at, "ended": self.ended_at,
                "state": self.state, "workers": self.workers, "schedule": self.schedule,
                "sent": sum(self.merged().sent.values()), "planned": plan.total if plan else None,
                "errors": self.errors}

    def rates(self) -> list[dict]:
        """Per second since the start: planned (from the schedule when known), sent, answered OK, failed,
        wrong answers, and the lateness of the requests that left in that second (None when none did)."""
        timeline = {row["second"]: row for row in self.merged().rates()}
        self._merge_seconds()
        late = self._by_second
        plan = self.plan()
        planned = plan.per_second if plan else []
        rows = []
        for second in sorted(set(timeline) | set(range(len(planned))) | set(late)):
            row, merged_second = timeline.get(second, {}), late.get(second, _NOTHING)
            rows.append({
                "second": second,
                "planned": planned[second] if second < len(planned) else (0 if plan else row.get("planned", 0)),
                "sent": row.get("sent", 0), "succeeded": row.get("succeeded", 0), "failed": row.get("failed", 0),
                **merged_second,
            })
        return rows

    def _merge_seconds(self) -> None:
        """Lateness and wrong answers of the seconds reported since the last call, merged over the processes
        (only those: a page refresh in an hour-long run must not stall the replay's event loop)."""
        for second in sorted(self._dirty):
            key, lateness, top, wrong = str(second), LatenessHistogram(), 0.0, 0
            for node_seconds in self.seconds.values():
                entry = node_seconds.get(key)
                if entry is None:
                    continue
                lateness.merge_sparse(entry.get("lateness", {}))
                top = max(top, entry.get("max", 0.0))
                wrong += entry.get("wrong", 0)
            figures = lateness_figures(lateness, top) if lateness.total else dict.fromkeys(LATENESS_KEYS)
            self._by_second[second] = {"wrong": wrong, **figures}
        self._dirty.clear()

    def data(self) -> dict:
        """What the Replay page shows of this run."""
        plan = self.plan()
        return {"run": self.describe(), "speedup": self.speedup, "summary": self.merged().summary(),
                "planned_total": plan.total if plan else None, "rates": self.rates()}


class RunBook:
    """Every run of this Locust process, in order; ``active`` is the one running now (None between runs)."""

    def __init__(self) -> None:
        self.runs: list[RunRecord] = []
        self.active: RunRecord | None = None

    def begin(self, **fields) -> RunRecord:
        self.end()
        record = RunRecord(number=len(self.runs) + 1, **fields)
        self.runs.append(record)
        self.active = record
        return record

    def end(self, now: float | None = None) -> None:
        if self.active is not None:
            self.active.ended_at = time.time() if now is None else now
            self.active = None

    @property
    def latest(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None

    def get(self, number: int | None) -> RunRecord | None:
        """The run of that number; None gives the latest."""
        if number is None:
            return self.latest
        return self.runs[number - 1] if 1 <= number <= len(self.runs) else None

    def take_stats(self, number: int | None, node: str, stats: dict, seconds: dict | None = None) -> None:
        record = self.get(number) if number is not None else self.active
        if record is not None:
            record.take_stats(node, stats, seconds)

    def take_done(self, number: int | None, node: str, error: str | None = None) -> None:
        record = self.get(number) if number is not None else self.active
        if record is not None:
            record.take_done(node, error)

    def listing(self) -> list[dict]:
        return [record.describe() for record in self.runs]

    def data(self, number: int | None = None) -> dict:
        record = self.get(number)
        runs = self.listing()
        if record is None:
            return {"run": None, "runs": runs, "speedup": None, "summary": ReplayStats().summary(),
                    "planned_total": None, "rates": []}
        return {**record.data(), "runs": runs}

    def lateness_table(self) -> list[dict]:
        """The latest run's rows of Locust's "Lateness" tab: one per operation, as Locust's Statistics rows
        (Type, Name), then "Aggregated"; lateness in ms, requests in flight now and at most (see
        :meth:`load.stats.ReplayStats.by_operation`). No run yet: no rows."""
        record = self.latest
        return [] if record is None else record.merged().by_operation()

    def table(self) -> list[dict]:
        """The runs as rows of Locust's "Replay" tab, the latest first."""
        rows = []
        for record in reversed(self.runs):
            merged = record.merged()
            summary, plan = merged.summary(), record._plan
            rows.append({
                "run": f"run {record.number}", "speedup": f"{record.speedup:g}×",
                "started": time.strftime("%H:%M:%S", time.localtime(record.start_at)), "state": record.state,
                "sent": f"{summary['sent']:,} of {plan.total:,}" if plan else f"{summary['sent']:,}",
                "lateness": f"p50 {summary['lateness_p50_ms']:g} ms, p99 {summary['lateness_p99_ms']:g} ms, "
                            f"max {summary['lateness_max_ms']:g} ms",
                "failed": f"{summary['failed']:,}", "wrong": f"{summary['wrong_answers']:,}",
            })
        return rows


# --- the page --------------------------------------------------------------------------------------

def _plotly_js() -> Path | None:
    """plotly.js as the ``plotly`` package ships it (found without importing the package)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>segur replay: planned against achieved</title>
<link rel="icon" href="data:,">
<script src="plotly.min.js"></script>
<style>
 body { font-family: system-ui, sans-serif; margin: 1em 1.5em; color: #222 }
 header { display: flex; align-items: baseline; gap: 1.5em; flex-wrap: wrap }
 header h2 { margin: 0.2em 0 }
 select { font-size: 1em; padding: 0.2em }
 #figures { margin: 0.6em 0; display: flex; flex-wrap: wrap; gap: 0.4em 2em }
 #figures b { font-variant-numeric: tabular-nums }
 .plot { width: 100%; height: 330px }
 #empty { color: #666 } #errors { color: #b00 }
 .lead { color: #444; max-width: 75em; margin: 0.3em 0 }
 #operations { border-collapse: collapse; margin: 0.4em 0 0.8em; font-variant-numeric: tabular-nums }
 #operations th, #operations td { padding: 0.15em 0.8em; border-bottom: 1px solid #ddd; text-align: right }
 #operations th:nth-child(-n+2), #operations td:nth-child(-n+2) { text-align: left }
 #operations tr:last-child td { font-weight: 600 }
</style></head>
<body>
<header>
 <a href="../">&larr; Locust</a>
 <h2>Scenario replay: planned against achieved</h2>
 <label>Run <select id="run"><option value="">no run yet</option></select></label>
</header>
<p class="lead">Each request of the schedule leaves at its planned time &divide; the speed-up, whatever happened to
earlier ones (an open workload). A service that keeps up answers at the planned rate; lateness is how late
requests left the driver (taken once a connection is in hand).</p>
<p id="empty">No run yet: start one from Locust's form (<a href="../">Locust</a>).</p>
<div id="figures">
 <span>run <b id="number">&ndash;</b> (<b id="state">&ndash;</b>), started <b id="started">&ndash;</b></span>
 <span>speed-up <b id="speedup">&ndash;</b>&times;</span>
 <span>sent <b id="sent">0</b> of <b id="planned-total">?</b></span>
 <span>lateness p50 <b id="p50">0</b> ms, p99 <b id="p99">0</b> ms, max <b id="max">0</b> ms</span>
 <span>failed <b id="failed">0</b>, of which wrong answers <b id="wrong">0</b></span>
</div>
<table id="operations">
 <thead><tr><th>Type</th><th>Name</th><th>sent</th><th>not sent</th><th>lateness p50 (ms)</th><th>p99 (ms)</th>
  <th>max (ms)</th><th>in flight now</th><th>most in flight</th></tr></thead>
 <tbody></tbody>
</table>
<div id="chart" class="plot" data-points="0"></div>
<div id="lateness-chart" class="plot"></div>
<div id="failures-chart" class="plot"></div>
<p id="errors"></p>
<script>
const $ = id => document.getElementById(id);
const select = $("run");
let shown = null, follow = true, latest = null, listed = "";
select.addEventListener("change", () => {
  shown = Number(select.value) || null; follow = shown === latest; refresh();
});
const clock = t => t ? new Date(t * 1000).toLocaleTimeString() : "\u2013";
function listRuns(runs) {
  latest = runs.length ? runs[runs.length - 1].number : null;
  if (follow || shown === null) shown = latest;
  const text = runs.map(r => `run ${r.number} \u00b7 ${r.speedup}\u00d7 \u00b7 started ${clock(r.started)} \u00b7 ${r.state}`);
  const key = text.join("\\n") + "|" + shown;
  if (key === listed) return;  // rebuilt only when it changes: an open select box stays open
  listed = key;
  select.replaceChildren(...runs.map((r, i) => new Option(text[i], r.number, false, r.number === shown)).reverse());
  if (!runs.length) select.replaceChildren(new Option("no run yet", ""));
}
const axis = title => ({title: {text: title}, rangemode: "tozero", zeroline: true, showline: true, ticks: "outside",
                        gridcolor: "#eee"});
function layout(title, ytitle, xmax) {
  return {title: {text: title, x: 0, font: {size: 15}}, margin: {l: 70, r: 20, t: 40, b: 50},
          xaxis: {...axis("seconds since the run's start (s)"), range: [-0.5, xmax]}, yaxis: axis(ytitle),
          legend: {orientation: "h", x: 1, xanchor: "right", y: 1.12}, hovermode: "x unified",
          plot_bgcolor: "#fff", barmode: "group"};
}
const config = {responsive: true, displaylogo: false};
function draw(rates) {
  const x = rates.map(r => r.second), col = k => rates.map(r => r[k]);
  const achieved = rates.filter(r => r.sent || r.succeeded || r.failed);
  const xmax = Math.max(1, ...x) + 0.5;
  Plotly.react("chart", [
    {x, y: col("planned"), name: "planned", mode: "lines", line: {color: "#1f77b4", width: 4, shape: "hvh"},
     opacity: 0.45},
    {x: achieved.map(r => r.second), y: achieved.map(r => r.sent), name: "sent", mode: "markers",
     marker: {color: "#ff7f0e", size: 7, symbol: "circle-open", line: {width: 2}}},
    {x: achieved.map(r => r.second), y: achieved.map(r => r.succeeded), name: "answered OK", mode: "lines",
     line: {color: "#2ca02c", dash: "dot", width: 2}},
  ], layout("Rate: planned against achieved", "rate (requests/s)", xmax), config);
  Plotly.react("lateness-chart", [
    {x, y: col("lateness_p50_ms"), name: "p50", mode: "lines+markers", line: {color: "#9467bd"},
     marker: {size: 4}, connectgaps: false},
    {x, y: col("lateness_p99_ms"), name: "p99", mode: "lines+markers", line: {color: "#d62728"},
     marker: {size: 4}, connectgaps: false},
    {x, y: col("lateness_max_ms"), name: "max", mode: "lines", line: {color: "#7f7f7f", dash: "dot"},
     connectgaps: false},
  ], layout("Lateness of the requests that left in each second", "lateness (ms)", xmax), config);
  Plotly.react("failures-chart", [
    {x, y: col("failed"), name: "failed", type: "bar", marker: {color: "#d62728"}},
    {x, y: col("wrong"), name: "wrong answers", type: "bar", marker: {color: "#8c564b"}},
  ], layout("Failures and wrong answers" + (rates.some(r => r.failed || r.wrong) ? "" : ": none"),
            "rate (requests/s)", xmax), config);
  $("chart").dataset.points = achieved.length;
}
async function refresh() {
  let data;
  try {
    data = await (await fetch(shown ? `data?run=${shown}` : "data")).json();
  } catch (e) { return; /* the master may be restarting: try again next second */ }
  listRuns(data.runs);
  $("empty").hidden = !!data.run;
  if (!data.run || (shown && data.run.number !== shown)) return;
  const s = data.summary, run = data.run;
  $("number").textContent = run.number;
  $("state").textContent = run.state;
  $("started").textContent = clock(run.started);
  $("speedup").textContent = data.speedup;
  $("sent").textContent = s.sent;
  $("planned-total").textContent = data.planned_total ?? "?";
  $("p50").textContent = s.lateness_p50_ms;
  $("p99").textContent = s.lateness_p99_ms;
  $("max").textContent = s.lateness_max_ms;
  $("failed").textContent = s.failed;
  $("wrong").textContent = s.wrong_answers;
  $("errors").textContent = run.errors.join("; ");
  operations(s.operations || []);
  draw(data.rates);
}
const OPERATION_COLUMNS = ["type", "name", "sent", "not_sent", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms",
                           "in_flight", "in_flight_max"];
function operations(rows) {  // one row per operation, as Locust's Statistics table names them, then Aggregated
  $("operations").tBodies[0].replaceChildren(...rows.map(row => {
    const tr = document.createElement("tr");
    for (const key of OPERATION_COLUMNS) tr.insertCell().textContent = row[key] ?? "\u2013";
    return tr;
  }));
}
setInterval(refresh, 1000); refresh();
</script></body></html>
"""

# injected into Locust's own page: a link to ours in its header, and a start form that leads with the speed-up
_LOCUST_UI_CSS = """
#segur-replay-link { margin-left: 1em; padding: 0.35em 0.8em; border-radius: 4px; background: #1f77b4;
  color: #fff; text-decoration: none; font-weight: 600; white-space: nowrap; font-family: sans-serif }
#segur-replay-link.floating { position: fixed; right: 1em; bottom: 1em; z-index: 2000 }
/* a replay's load is its schedule: users and ramp-up do not apply (one replayer per process) */
form .MuiFormControl-root:has(input[name="userCount"]),
form .MuiFormControl-root:has(input[name="spawnRate"]) { display: none }
form .MuiAccordion-root:has(input[name="speedup"]) { order: -1 }
form .MuiFormControl-root:has(input[name="speedup"]) { order: -2 }
form .MuiFormControl-root:has(input[name="schedule"]) { order: -1 }
#segur-form-note { order: -2; margin: 0; padding: 0.6em 0.8em; border-left: 4px solid #1f77b4;
  background: rgba(31, 119, 180, 0.08); font-family: sans-serif; font-size: 0.95em; line-height: 1.4 }
"""

_LOCUST_UI_JS = """
(() => {
  const page = new URL("./", document.currentScript.src).href;
  function link() {
    const bar = document.querySelector("header .MuiToolbar-root");
    let a = document.getElementById("segur-replay-link");
    if (a && (!bar || a.parentElement === bar)) return;
    if (!a) {
      a = document.createElement("a");
      a.id = "segur-replay-link"; a.href = page; a.textContent = "Replay page \u2197";
      a.title = "The scenario's planned rate against the achieved rate, lateness, failures and wrong answers, "
        + "run by run";
    }
    if (bar) {  // in Locust's header, after its logo
      a.className = "";
      const logo = bar.querySelector(":scope > a");
      if (logo) logo.after(a); else bar.appendChild(a);
    } else if (!a.parentElement) {
      a.className = "floating"; document.body.appendChild(a);
    }
  }
  function form() {
    const speedup = document.querySelector("form input[name='speedup']");
    if (!speedup) return;
    const accordion = speedup.closest(".MuiAccordion-root");
    if (!accordion || accordion.dataset.segur) return;
    accordion.dataset.segur = "1";
    const summary = accordion.querySelector("[aria-expanded='false']");
    if (summary) summary.click();  // the replay's options open, speed-up first
    const note = document.createElement("p");
    note.id = "segur-form-note";
    note.textContent = "A replay sends every row of the schedule at its planned time \u00f7 the speed-up: "
      + "the speed-up sets the load. Users and ramp-up do not apply (one replayer per process), so they are "
      + "not asked. Each Start is a new run; the Replay page keeps every run of this Locust process.";
    accordion.parentElement.insertBefore(note, accordion);
  }
  const check = () => { link(); form(); };
  new MutationObserver(check).observe(document.documentElement, {childList: true, subtree: true});
  check();
})();
"""

_TABLE = [{"key": "run", "title": "Run"}, {"key": "speedup", "title": "Speed-up"},
          {"key": "started", "title": "Started"}, {"key": "state", "title": "State"},
          {"key": "sent", "title": "Sent (of planned)"}, {"key": "lateness", "title": "Lateness"},
          {"key": "failed", "title": "Failed"}, {"key": "wrong", "title": "Wrong answers"}]

# the rows of load.stats.ReplayStats.by_operation, in the order of Locust's Statistics table (Type, Name first)
_LATENESS_TABLE = [{"key": key, "title": title} for key, title in OPERATION_COLUMNS]


def add_replay_page(app, book: RunBook, base_path: str = "") -> None:
    """Serve the page at <base>/replay/, its figures at <base>/replay/data?run=N, the runs at
    <base>/replay/runs and plotly.js at <base>/replay/plotly.min.js, on Locust's Flask app."""
    blueprint = Blueprint("segur_replay", __name__, url_prefix=f"{base_path.rstrip('/')}/replay")

    @blueprint.route("/")
    def page():
        return Response(_PAGE, mimetype="text/html")

    @blueprint.route("/data")
    def figures():
        number = request.args.get("run", type=int)
        return jsonify(book.data(number))

    @blueprint.route("/runs")
    def runs():
        return jsonify(book.listing())

    @blueprint.route("/plotly.min.js")
    def plotly_js():
        path = _plotly_js()
        if path is None:
            return Response("plotly.js is missing: install the plotly package (uv sync)", status=500,
                            mimetype="text/plain")
        return send_file(path, mimetype="application/javascript", max_age=86_400)

    @blueprint.route("/locust-ui.js")
    def locust_ui_js():
        return Response(_LOCUST_UI_JS, mimetype="application/javascript")

    @blueprint.route("/locust-ui.css")
    def locust_ui_css():
        return Response(_LOCUST_UI_CSS, mimetype="text/css")

    app.register_blueprint(blueprint)


def extend_locust_ui(web_ui, book: RunBook, base_path: str = "") -> None:
    """Locust's own UI: a "Replay" tab listing the runs and a "Lateness" tab with the latest run's lateness and
    requests in flight per operation (Locust's extended tabs, updated with its statistics), a link to the
    Replay page in its "Download Data" tab and in its header, and a start form that leads with the speed-up."""
    base = base_path.rstrip("/")
    web_ui.template_args["extended_tabs"] = [{"title": "Replay", "key": "replay"},
                                             {"title": "Lateness", "key": "lateness"}]
    web_ui.template_args["extended_tables"] = [{"key": "replay", "structure": _TABLE},
                                               {"key": "lateness", "structure": _LATENESS_TABLE}]
    web_ui.template_args["extended_csv_files"] = [
        {"href": f"{base}/replay/", "title": "Replay page: planned against achieved rate, lateness, failures (charts)"},
        {"href": f"{base}/replay/runs", "title": "Replay runs (JSON; each run's figures at replay/data?run=N)"},
    ]

    @web_ui.app.after_request
    def _extend(response):
        if request.method != "GET" or response.status_code != 200 or response.direct_passthrough:
            return response
        if request.path == f"{base}/stats/requests" and response.is_json:
            body = response.get_json()
            extended = [entry for entry in body.get("extended_stats") or []
                        if entry.get("key") not in ("replay", "lateness")]
            body["extended_stats"] = [*extended, {"key": "replay", "data": book.table()},
                                      {"key": "lateness", "data": book.lateness_table()}]
            response.set_data(json.dumps(body))
        elif request.path in (f"{base}/", base or "/") and response.mimetype == "text/html":
            html = response.get_data(as_text=True)
            tags = (f'<link rel="stylesheet" href="{base}/replay/locust-ui.css">'
                    f'<script src="{base}/replay/locust-ui.js"></script>')
            if "</body>" in html and "locust-ui.js" not in html:
                response.set_data(html.replace("</body>", tags + "</body>", 1))
        return response
