"""The replay's own figures where a Locust user looks: beside Locust's CSV files and inside its HTML report.

Locust counts one user per process (the replayer) and knows nothing of lateness. After a run,
``annotate`` adds to Locust's HTML report a table of what the replay measured (lateness
percentiles and maximum, requests in flight at most, sent / not sent / unanswered / wrong
answers) and, under it, the same per operation, one row for each row of Locust's Statistics
(Type, Name), then "Aggregated". ``write_csv`` writes ``<prefix>_replay.csv`` beside
``<prefix>_stats.csv``: one row per second (planned, sent, answered OK, failed), a summary row,
then the per-operation rows.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

from load.stats import OPERATION_COLUMNS

_ROWS = (("sent", "requests sent"), ("not_sent", "not sent: target never acknowledged (seed first)"),
         ("unanswered", "sent, no answer within the drain time"), ("failed", "failed (unanswered and wrong included)"),
         ("wrong_answers", "wrong answers (accepted status, wrong content)"),
         ("lateness_p50_ms", "lateness p50, ms (planned instant to leaving, connection in hand)"),
         ("lateness_p99_ms", "lateness p99, ms"), ("lateness_max_ms", "lateness max, ms"),
         ("in_flight_max", "requests in flight at most (Locust's user count stays at 1 per process)"))

# the columns of the per-operation rows (load.stats.ReplayStats.by_operation); "in flight now" is 0 after a run
_OPERATION_COLUMNS = tuple(column for column in OPERATION_COLUMNS if column[0] != "in_flight")


def write_csv(report: dict, path: Path) -> None:
    """Per-second planned/sent/succeeded/failed of the replay, one summary row, then one row per operation
    (lateness in ms; none when none of its requests left) and "Aggregated"."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["second", "planned", "sent", "succeeded", "failed"])
        for row in report.get("rates", []):
            writer.writerow([row["second"], row["planned"], row["sent"], row["succeeded"], row["failed"]])
        writer.writerow([])
        writer.writerow([key for key, _ in _ROWS])
        writer.writerow([report.get(key, "") for key, _ in _ROWS])
        operations = report.get("operations") or []
        if operations:
            writer.writerow([])
            writer.writerow([key for key, _ in _OPERATION_COLUMNS])
            for row in operations:
                writer.writerow(["" if row.get(key) is None else row[key] for key, _ in _OPERATION_COLUMNS])


def _operations_table(rows: list[dict]) -> str:
    """The per-operation rows as an HTML table (empty without rows: a report of before)."""
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in _OPERATION_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str('–' if row.get(key) is None else row[key]))}</td>"
                                     for key, _ in _OPERATION_COLUMNS) + "</tr>" for row in rows)
    return ("<style>#segur-replay-operations td, #segur-replay-operations th { padding: 0.1em 0.7em; "
            "text-align: right }</style><h3>Per request, as Locust's Statistics names them</h3>"
            f"<table id='segur-replay-operations'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def annotate(html_path: Path, report: dict) -> bool:
    """Insert the replay's tables at the top of Locust's HTML report; False when there is no report to annotate."""
    if not html_path.exists():
        return False
    text = html_path.read_text(encoding="utf-8")
    marker = "<body>" if "<body>" in text else None
    if marker is None or "segur-replay" in text:
        return False
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(words)}</th><td>{report.get(key, '')}</td></tr>"
                   for key, words in _ROWS)
    table = (f"<section id='segur-replay' style='font-family:sans-serif;margin:1em'><h2>Open-model replay at "
             f"{report.get('speedup', '')}x: lateness and concurrency</h2><table>{rows}</table>"
             f"{_operations_table(report.get('operations') or [])}</section>")
    html_path.write_text(text.replace(marker, marker + table, 1), encoding="utf-8")
    return True
