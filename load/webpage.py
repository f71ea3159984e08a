"""A "Replay" page in Locust's web UI: the scenario's planned rate against the achieved rate, and lateness.

Locust's own charts show requests per second and response times; they cannot show whether the
service keeps up with the *scenario*. This page can: it polls ``/replay/data`` every second
and draws planned, sent and answered requests per second on a canvas (no external script: the
machines running it may have no internet).
"""

from __future__ import annotations

from typing import Callable

from flask import Blueprint, jsonify

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>segur replay: planned vs achieved</title>
<style>
 body { font-family: sans-serif; margin: 1.5em; color: #222 }
 #figures span { display: inline-block; margin-right: 2em }
 canvas { border: 1px solid #ccc; margin-top: 1em }
 .planned { color: #1f77b4 } .answered { color: #2ca02c } .failed { color: #d62728 }
</style></head>
<body>
<h2>Scenario replay: planned against achieved rate</h2>
<p>Each request of the schedule leaves at its planned time (open model).
A service that keeps up answers as fast as the plan sends; lateness is how late requests left.</p>
<div id="figures">
 <span>sent <b id="sent">0</b> of <b id="planned-total">?</b></span>
 <span>lateness p50 <b id="p50">0</b> ms, p99 <b id="p99">0</b> ms</span>
 <span>failed <b id="failed">0</b></span>
 <span>speed-up <b id="speedup">1</b>×</span>
</div>
<canvas id="chart" width="1000" height="360"></canvas>
<p><span class="planned">■ planned</span> &nbsp; <span class="answered">■ answered OK</span> &nbsp;
<span class="failed">■ failed</span> &nbsp; (requests per second)</p>
<script>
function draw(data) {
  const canvas = document.getElementById("chart"), g = canvas.getContext("2d");
  const rates = data.rates, w = canvas.width, h = canvas.height, pad = 40;
  g.clearRect(0, 0, w, h);
  if (!rates.length) return;
  const last = rates[rates.length - 1].second + 1;
  const top = Math.max(1, ...rates.map(r => Math.max(r.planned, r.succeeded + r.failed)));
  const x = s => pad + (w - 2 * pad) * s / Math.max(last, 1), y = v => h - pad - (h - 2 * pad) * v / top;
  g.strokeStyle = "#999"; g.beginPath(); g.moveTo(pad, pad); g.lineTo(pad, h - pad); g.lineTo(w - pad, h - pad); g.stroke();
  g.fillStyle = "#444"; g.fillText(top.toFixed(0) + "/s", 2, pad); g.fillText(last + " s", w - pad, h - pad + 15);
  for (const [key, colour] of [["planned", "#1f77b4"], ["succeeded", "#2ca02c"], ["failed", "#d62728"]]) {
    g.strokeStyle = colour; g.lineWidth = 2; g.beginPath();
    rates.forEach((r, i) => i ? g.lineTo(x(r.second), y(r[key])) : g.moveTo(x(r.second), y(r[key])));
    g.stroke();
  }
}
async function refresh() {
  try {
    const data = await (await fetch("data")).json();
    document.getElementById("sent").textContent = data.summary.sent;
    document.getElementById("planned-total").textContent = data.planned_total ?? "?";
    document.getElementById("p50").textContent = data.summary.lateness_p50_ms;
    document.getElementById("p99").textContent = data.summary.lateness_p99_ms;
    document.getElementById("failed").textContent = data.summary.failed;
    document.getElementById("speedup").textContent = data.speedup;
    document.getElementById("chart").dataset.points = data.rates.length;
    draw(data);
  } catch (e) { /* the master may be restarting: try again next second */ }
}
setInterval(refresh, 1000); refresh();
</script></body></html>
"""


def add_replay_page(app, data: Callable[[], dict]) -> None:
    """Serve the page at /replay/ and its figures at /replay/data on Locust's Flask app."""
    blueprint = Blueprint("segur_replay", __name__, url_prefix="/replay")

    @blueprint.route("/")
    def page():
        return _PAGE

    @blueprint.route("/data")
    def figures():
        return jsonify(data())

    app.register_blueprint(blueprint)
