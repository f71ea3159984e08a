"""The plan as a person reads it: PNG plots, and one self-contained report.html with them embedded."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from planner.verdict import banner  # noqa: E402


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _steps(plan: dict) -> list[dict]:
    return sorted(plan["steps"], key=lambda s: s["offered_rps"])


def latency_knee(plan: dict, path: Path) -> None:
    steps = _steps(plan)
    offered = [s["offered_rps"] for s in steps]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.plot(offered, [s["p50_ms"] for s in steps], "o-", label="p50 measured")
    axis.plot(offered, [s["p99_ms"] for s in steps], "s-", label="p99 measured")
    axis.axhline(plan["slo"]["p99_ms"], color="red", ls="--", lw=1, label=f"SLO p99 {plan['slo']['p99_ms']:g} ms")
    model = plan.get("model")
    if model:
        from planner.queueing import Model

        curve = Model(**model)
        xs = sorted({*offered, *(curve.base_rps * f for f in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000))})
        xs = [x for x in xs if x <= max(offered) * 1.5]
        predicted = [curve.predicted_p99_ms(x / curve.base_rps * curve.base_speedup) for x in xs]
        axis.plot(xs, [min(p, plan["slo"]["p99_ms"] * 4) for p in predicted], ":", color="grey",
                  label="p99 predicted (M/M/c)")
    for step in steps:
        if not step["holds"]:
            axis.annotate("breaks", (step["offered_rps"], step["p99_ms"]), textcoords="offset points", xytext=(4, 4),
                          fontsize=7, color="red")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("offered requests per second (log)")
    axis.set_ylabel("latency, ms (log)")
    axis.set_title(f"{plan['scenario']} on {plan['service']['kind']}: latency against offered load")
    axis.legend(fontsize=8)
    _save(figure, path)


def throughput(plan: dict, path: Path) -> None:
    steps = _steps(plan)
    offered = [s["offered_rps"] for s in steps]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(offered, offered, color="grey", lw=1, ls="--", label="achieved = offered")
    left.plot(offered, [s["achieved_rps"] for s in steps], "o-", label="achieved (answered OK)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("offered requests/s")
    left.set_ylabel("achieved requests/s")
    left.legend(fontsize=8)
    left.set_title("throughput")
    service = [s["service_cpu_cores"] or 0 for s in steps]
    driver = [s["driver_cpu_cores"] for s in steps]
    other = [s["other_cpu_cores"] for s in steps]
    right.stackplot(offered, service, driver, other, alpha=0.35, colors=["tab:blue", "tab:orange", "tab:grey"])
    right.plot(offered, service, "o-", color="tab:blue",
               label="service" + (" with its database" if plan["service"]["kind"] == "postgresql" else ""))
    right.plot(offered, driver, "s-", color="tab:orange", label="load driver")
    right.plot(offered, other, "^-", color="tab:grey", label="other programs")
    right.axhline(plan["machine_cores"], color="red", ls="--", lw=1, label=f"machine: {plan['machine_cores']} cores")
    right.set_xscale("log")
    right.set_xlabel("offered requests/s")
    right.set_ylabel("cores busy (stacked: who shares the machine)")
    right.legend(fontsize=8)
    right.set_title("who uses the CPU")
    _save(figure, path)


def errors_and_lateness(plan: dict, path: Path) -> None:
    steps = _steps(plan)
    offered = [s["offered_rps"] for s in steps]
    figure, axis = plt.subplots(figsize=(8, 4))
    axis.plot(offered, [s["error_rate"] * 100 for s in steps], "o-", color="tab:red", label="errors (%)")
    axis.set_xscale("log")
    axis.set_xlabel("offered requests/s")
    axis.set_ylabel("errors, %")
    twin = axis.twinx()
    twin.plot(offered, [s["lateness_p99_ms"] for s in steps], "s--", color="tab:purple", label="lateness p99 (ms)")
    twin.set_ylabel("lateness p99, ms")
    figure.legend(fontsize=8, loc="upper left")
    axis.set_title("errors and lateness against offered load")
    _save(figure, path)


def latency_by_operation(plan: dict, path: Path) -> None:
    """p99 and p50 of each operation (deposit, search, retrieve…) against the offered load."""
    steps = _steps(plan)
    operations = sorted({name for s in steps for name in s["by_operation"]})
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for index, name in enumerate(operations):
        points = [(s["offered_rps"], s["by_operation"][name]) for s in steps if name in s["by_operation"]]
        colour = plt.get_cmap("tab10")(index)
        axis.plot([x for x, _ in points], [max(op["p99_ms"], 0.1) for _, op in points], "o-", color=colour,
                  label=f"{name} p99")
        axis.plot([x for x, _ in points], [max(op["p50_ms"], 0.1) for _, op in points], ":", color=colour,
                  label=f"{name} p50")
    axis.axhline(plan["slo"]["p99_ms"], color="red", ls="--", lw=1, label=f"SLO p99 {plan['slo']['p99_ms']:g} ms")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("offered requests per second (log)")
    axis.set_ylabel("latency, ms (log)")
    axis.set_title("latency of each operation against offered load")
    axis.legend(fontsize=7, ncol=2)
    _save(figure, path)


def capacity_by_corpus(plan: dict, path: Path) -> None:
    """The capacity found against each corpus searched, by the corpus's size (log GB), this machine's RAM marked:
    hot and cold share a size and differ by where the documents are read from."""
    entries = plan.get("capacity_by_corpus") or []
    figure, axis = plt.subplots(figsize=(8, 4.2))
    markers = {"hot": ("o", "tab:red"), "cold": ("s", "tab:blue")}
    for entry in entries:
        marker, colour = markers.get(entry["regime"], ("D", "tab:green"))
        gb = max(entry["bytes"], 1) / 1e9
        axis.plot([gb], [entry["max_sustainable_speedup"]], marker, color=colour, ms=9)
        p99 = entry.get("retrieve_p99_ms")
        mb = entry.get("disk_read_mb_per_s")
        axis.annotate(f"{entry['regime']}" + (f"\nretrieve p99 {p99:g} ms" if p99 is not None else "")
                      + (f"\ndisk {mb:g} MB/s" if mb is not None else ""),
                      (gb, entry["max_sustainable_speedup"]), textcoords="offset points", xytext=(8, -4), fontsize=7)
    ram = (plan.get("corpus") or {}).get("ram_bytes")
    if ram:
        axis.axvline(ram / 1e9, color="grey", ls="--", lw=1, label=f"this machine's RAM ({ram / 2**30:,.0f} GiB)")
        axis.legend(fontsize=8)
    axis.set_xscale("log")
    axis.set_ylim(bottom=0)
    axis.set_xlabel("corpus in the service, GB (log)")
    axis.set_ylabel("max sustainable speed-up")
    axis.set_title("capacity against the corpus (hot: page cache; cold: read from the disk)")
    _save(figure, path)


PLOTS = {"latency_knee.png": latency_knee, "latency_by_operation.png": latency_by_operation,
         "throughput.png": throughput, "errors_lateness.png": errors_and_lateness}


def _plots(plan: dict) -> dict:
    """The plots this plan has: the fixed ones, and capacity by corpus when it searched a corpus."""
    return {**PLOTS, **({"capacity_by_corpus.png": capacity_by_corpus} if plan.get("capacity_by_corpus") else {})}


def write(plan: dict, out: Path) -> None:
    for name, draw in _plots(plan).items():
        draw(plan, out / name)
    (out / "plan.json").write_text(json.dumps(plan, indent=2, ensure_ascii=False) + "\n")
    (out / "report.html").write_text(_html(plan, out), encoding="utf-8")


def _operations_table(plan: dict) -> str:
    """Each operation at the highest step that held and at the first that broke (when there is one)."""
    held = [s for s in plan["steps"] if s["holds"]]
    broken = [s for s in plan["steps"] if not s["holds"] and s["speedup"] > plan["max_sustainable_speedup"]]
    chosen = ([max(held, key=lambda s: s["speedup"])] if held else []) + (
        [min(broken, key=lambda s: s["speedup"])] if broken else [])
    rows = "".join(
        f"<tr class={'ok' if s['holds'] else 'bad'}><td>{s['speedup']:,.0f}×</td><td>{html.escape(name)}</td>"
        f"<td>{op['requests']:,}</td><td>{op['failures']:,}</td><td>{op['p50_ms']:g}</td><td>{op['p99_ms']:g}</td>"
        f"<td>{op['mean_ms']:.1f}</td></tr>"
        for s in chosen for name, op in sorted(s["by_operation"].items()))
    return ("<table><tr><th>step</th><th>operation</th><th>requests</th><th>failures</th><th>p50 ms</th>"
            f"<th>p99 ms</th><th>mean ms</th></tr>{rows}</table>")


def _priced_table(priced: dict, what: str) -> str:
    """One row per interaction or call type: rate, count, failures, latency, the service's and the driver's CPU."""
    def cell(value, form: str = "{:,.1f}") -> str:
        return "" if value is None else form.format(value)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{cell(f.get('per_second'), '{:,.2f}')}</td><td>{f['count']:,}</td>"
        f"<td>{f['failures']:,}</td><td>{f['p50_ms']:g}</td><td>{f['p99_ms']:g}</td>"
        f"<td>{cell(f.get('service_cpu_us'), '{:,.0f}')}</td><td>{cell(f.get('driver_cpu_us'), '{:,.0f}')}</td>"
        f"<td>{html.escape(', '.join(f'{c} ×{n:g}' for c, n in f.get('calls_per_interaction', {}).items()))}</td></tr>"
        for name, f in sorted(priced.get(what, {}).items()))
    return (f"<table><tr><th>{what[:-1]}</th><th>per s</th><th>count</th><th>failures</th><th>p50 ms</th><th>p99 ms</th>"
            f"<th>service CPU µs</th><th>driver CPU µs</th><th>calls</th></tr>{rows}</table>")


def _protocols(plan: dict) -> str:
    """The capacity with the professionals on each interface searched, side by side, and each one's prices."""
    protocols = plan.get("protocols") or {}
    if not protocols:
        return ""
    def headroom(p: dict) -> str:
        return " / ".join(f"{p['national_headroom'].get(level, 0):.3g}×" for level in ("low", "central", "high"))
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td colspan=3>not searched: {html.escape(p['skipped'])}</td></tr>"
        if "skipped" in p else
        f"<tr><td>{html.escape(name)}</td><td>{p['max_sustainable_speedup']:,.0f}×</td><td>{headroom(p)}</td>"
        f"<td>{'holds' if p['holds'] else 'does not hold'}</td></tr>" for name, p in protocols.items())
    parts = [f"<h2>Professionals on XDS.b and on FHIR, side by side</h2><p>The same service, corpus and window; "
             "only the professionals' interface differs (dmp: IHE XDS.b with signed VIHF, patients over FHIR; fhir: "
             "ANS PDSm4DMP). The second protocol listed was searched after the first, on the database the first "
             "grew.</p><table><tr><th>protocol</th><th>max speed-up</th><th>national headroom (low / "
             f"central / high)</th><th>verdict</th></tr>{rows}</table>"]
    for name, p in protocols.items():
        if "skipped" in p:
            continue
        at = p.get("measured_at_speedup")
        parts.append(f"<h3>{html.escape(name)}: per interaction (at {at:g}×)</h3>" if at else
                     f"<h3>{html.escape(name)}: per interaction</h3>")
        parts.append(_priced_table(p, "interactions"))
        parts.append(f"<h3>{html.escape(name)}: per call type</h3>" + _priced_table(p, "calls"))
    parts.append("<p>Service CPU per call: each worker's CPU shared among the requests in flight (their sum is "
                 "exact; one call's share is an attribution). Per interaction: its calls' CPU times how many it "
                 "makes. Driver CPU: building the request and checking the answer (VIHF signing apart).</p>")
    return "".join(parts)


def _disk_cell(step: dict) -> str:
    if step.get("disk_read_iops") is None:
        return ""
    return f"{step['disk_read_iops']:,.0f}, {step['disk_read_mb_per_s']:,.1f}, {step['disk_busy_share']:.0%}"


def _corpus(plan: dict) -> str:
    """The corpus measured against, the capacity in each regime searched, and storage for planners."""
    corpus, entries, storage = plan.get("corpus"), plan.get("capacity_by_corpus") or [], plan.get("storage") or {}
    if not corpus:
        return ""
    def number(value, form: str = "{:,.1f}") -> str:
        return "" if value is None else form.format(value)
    parts = [f"<h2>The corpus</h2><p>The verdict is measured against a <b>{html.escape(corpus['regime'])}</b> corpus "
             f"of {corpus['documents']:,} documents ({corpus['bytes'] / 1e9:,.2f} GB; this machine has "
             f"{corpus['ram_bytes'] / 2**30:,.0f} GiB of RAM). Cold: every document older than the window is evicted "
             "from the page cache before each pass over the window, so its reads go to the disk, as in the national "
             "record (over a billion documents, far larger than any RAM); hot: all of them cached.</p>"]
    rows = "".join(
        f"<tr><td>{html.escape(e['regime'])}</td><td>{e['documents']:,}</td><td>{e['bytes'] / 1e9:,.2f}</td>"
        f"<td>{e['max_sustainable_speedup']:,.0f}×</td><td>{number(e.get('national_headroom'), '{:.3g}×')}</td>"
        f"<td>{number(e.get('retrieve_p99_ms'), '{:g}')}</td><td>{number(e.get('disk_read_iops'), '{:,.0f}')}</td>"
        f"<td>{number(e.get('disk_read_mb_per_s'))}</td><td>{number(e.get('disk_busy_share'), '{:.0%}')}</td>"
        f"<td>{html.escape(str(e.get('bottleneck') or ''))}</td></tr>" for e in entries)
    parts.append("<table><tr><th>corpus</th><th>documents</th><th>GB</th><th>max speed-up</th><th>national headroom"
                 "</th><th>retrieve p99 ms</th><th>disk reads/s</th><th>disk MB/s</th><th>disk busy</th>"
                 f"<th>first limit</th></tr>{rows}</table><p>Figures at the highest step that held.</p>")
    need = storage.get("window_disk_reads") or {}
    if need.get("national_disk_read_iops") is not None:
        parts.append(f"<p>The national window needs, in the {html.escape(need['regime'])} regime, "
                     f"{need['national_retrieves_per_second']:,.0f} retrieves/s, read from the disk as "
                     f"{need['national_disk_read_iops']:,} reads/s and {need['national_disk_read_mb_per_s']:,.0f} MB/s "
                     f"({need['disk_reads_per_retrieve']:g} disk reads and {need['disk_mb_per_retrieve']:g} MB per "
                     "retrieve, measured at the step that held most).</p>")
    years = storage.get("by_year") or []
    if years:
        sectors = sorted({name for year in years for name in year.get("by_sector", {})})
        head = "".join(f"<th>{html.escape(name)} TB</th>" for name in sectors)
        database = storage.get("database") or {}
        national = database.get("national_bytes_by_year", {})
        body = "".join(
            f"<tr><td>{y['year']}</td><td>{y['documents']:,}</td><td>{y['bytes'] / 1e12:,.1f}</td>"
            + "".join(f"<td>{y.get('by_sector', {}).get(name, {}).get('bytes', 0) / 1e12:,.1f}</td>" for name in sectors)
            + f"<td>{national.get(str(y['year']), 0) / 1e12:,.2f}</td></tr>" for y in years)
        parts.append("<h3>Storage for planners: the national record at the end of each year (cumulative)</h3>"
                     f"<table><tr><th>year</th><th>documents</th><th>TB</th>{head}<th>database TB</th></tr>{body}"
                     "</table>" + (f"<p>Database: {database['bytes_per_document']:,} bytes per document measured "
                                   f"here ({database['documents']:,} documents, {database['bytes'] / 1e6:,.0f} MB); the "
                                   "cold regime evicts documents, not the database, whose index is taken as held in "
                                   "memory: the database column is what that needs.</p>" if database else ""))
    return "".join(parts)


def _banner(plan: dict) -> str:
    if "national_headroom" not in plan:  # a plan.json written before the national verdict
        return "HOLDS" if plan.get("holds_scenario") else "DOES NOT HOLD"
    return banner(plan)


def _image(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _outage_words(drain: dict) -> str:
    """The outage what-if in one sentence: backlog, drain time, and whether the surge held when replayed."""
    if "backlog_documents" not in drain:
        return drain.get("error", "not computed")
    drained = ("does not drain within two days" if drain["drain_minutes"] is None
               else f"drained {drain['drain_minutes']} min after the recovery")
    words = (f"{drain['outage_hours']:g} h outage: {drain['backlog_documents']:,} documents queued, {drained}; "
             f"the surge peaks at {drain['surge_peak_rps']:,.0f}/s national against a measured capacity of "
             f"{drain['capacity_rps']:,.0f}/s")
    replayed = drain.get("recovery_replay") or {}
    if "holds" in replayed:
        window = replayed["window"]
        verdict_ = "held" if replayed["holds"] else "did NOT hold (" + "; ".join(replayed["broken"]) + ")"
        return (f"{words}. Replayed against the service ({window['minutes']} min from {window['start']}, the "
                f"surge's busiest, at {replayed['speedup']:,.0f}x = {replayed['offered_rps']:,.0f}/s): it {verdict_}, "
                f"p99 {replayed['p99_ms']:g} ms, lateness p99 {replayed['lateness_p99_ms']:g} ms")
    if "skipped" in replayed:
        return f"{words}. Not replayed: {replayed['skipped']}"
    return f"{words}: the surge {'holds' if drain['surge_holds'] else 'does NOT hold'} (computed, not replayed)"


def _html(plan: dict, out: Path) -> str:
    rows = "".join(
        f"<tr class={'ok' if s['holds'] else 'bad'}><td>{s['speedup']:,.0f}×</td><td>{s['offered_rps']:,.1f}</td>"
        f"<td>{s['achieved_rps']:,.1f}</td><td>{s['p50_ms']:g}</td><td>{s['p99_ms']:g}</td>"
        f"<td>{s['requests']:,}</td><td>{s['failures']:,}</td><td>{s['unanswered']:,}</td><td>{s['wrong_answers']:,}</td>"
        f"<td>{s['error_rate']:.2%} ({s['rejections']} × 503)</td><td>{s['lateness_p99_ms']:.3g}</td>"
        f"<td>{'' if s['service_cpu_cores'] is None else s['service_cpu_cores']}</td><td>{s['driver_cpu_cores']}</td>"
        f"<td>{_disk_cell(s)}</td>"
        f"<td>{'holds' if s['holds'] else html.escape('; '.join(s['broken']))}</td></tr>"
        for s in sorted(plan["steps"], key=lambda s: s["speedup"]))
    headroom = plan.get("national_headroom") or {}
    drain = plan.get("outage_drain") or {}
    figures = {
        "national headroom (low / central / high traffic)": " / ".join(
            f"{headroom.get(level, 0):.3g}×" for level in ("low", "central", "high")),
        "required": f"{plan.get('headroom_required', 1):g}× at the {plan.get('assume', 'central')} assumptions",
        "max sustainable speed-up": f"{plan['max_sustainable_speedup']:,.0f}× at scale {plan['scale']:g} "
                                    f"({plan['national_equivalent_speedup']:g}× the national traffic of the window)",
        "outage what-if": _outage_words(drain),
        "predicted knee (queueing model)": f"{plan['predicted_knee_speedup']}× ({plan['predicted_limit']})",
        "documents a year, national (the scenario's calendar year)": f"{plan.get('documents_per_year_national', 0):,}",
        "documents a year the service would take (same profile, at its headroom)":
            f"{plan['documents_per_year_sustained']:,.0f}",  # the sample's year x the speed-up = national x headroom
        "storage growth / year (scenario volume)": f"{plan['storage_bytes_per_year'] / 1e12:,.3f} TB "
                                                   f"(national: {plan['storage_bytes_per_year_national'] / 1e12:,.0f} TB)",
        "first bottleneck": plan["bottleneck"],
        "SLO": ", ".join(f"{k} {v}" for k, v in plan["slo"].items()),
    }
    check = plan.get("model_check") or {}
    if check.get("error") is not None:
        figures["queueing model against the measurement"] = (
            f"predicted {check['predicted']:,.0f}×, measured {check['measured']:,.0f}× ({check['error']:+.0%})"
            + (f": {check['note']}" if check.get("note") else ""))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in figures.items())
    images = "".join(_image(out / name) for name in _plots(plan))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Capacity plan: {html.escape(plan['scenario'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th{{background:#f4f4f4;text-align:left}}
tr.bad td{{background:#fde8e8}} tr.ok td{{background:#eef8ee}} img{{max-width:100%;margin:1em 0}} .verdict{{font-size:1.05em}}
.banner{{font-size:1.5em;font-weight:bold;padding:.6em 1em;border-radius:6px}} .holds{{background:#e3f4e3;color:#135e13}}
.fails{{background:#fbe3e3;color:#8a1111}}</style>
</head><body><h1>Capacity plan — {html.escape(plan['scenario'])} on {html.escape(plan['service']['kind'])}</h1>
<p class="banner {'holds' if plan.get('holds') else 'fails'}">{html.escape(_banner(plan))}</p>
<p class="verdict">{html.escape(plan['verdict'].removeprefix(_banner(plan) + '.').strip())}</p><table>{table}</table>
{_protocols(plan)}
{_corpus(plan)}
<h2>Latency by call</h2>{_operations_table(plan)}
<h2>Steps</h2><p>Failed counts every request not answered right: unanswered (no answer before the step's
drain time) and wrong answers (an accepted status, wrong content) are part of it.</p>
<table><tr><th>speed-up</th><th>offered/s</th><th>achieved/s</th><th>p50 ms</th><th>p99 ms</th>
<th>requests</th><th>failed</th><th>of them unanswered</th><th>of them wrong answers</th><th>errors</th><th>lateness p99 ms</th><th>service cores</th><th>driver cores</th><th>disk reads/s, MB/s, busy</th><th>verdict</th></tr>{rows}</table>
{images}<p>Locust's own CSV and HTML reports of every step are in <code>steps/</code> beside this file.</p></body></html>"""
