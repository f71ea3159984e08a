"""The replay's figures in Locust's HTML report and beside its CSV files: the overall row and one per request."""

import csv

from load.locust_report import annotate, write_csv
from load.stats import ReplayStats


def _report() -> dict:
    stats = ReplayStats()
    for lateness_ms in (1.0, 2.0, 3.0):
        stats.record_send("search", lateness_ms, 0)
    stats.record_send("deposit", 40.0, 1)
    stats.record_send("retrieve", 0.1, 1)
    stats.record_not_sent("retrieve", 0.1, 1)
    return {"speedup": 50.0, **stats.summary(), "rates": stats.rates()}


def test_the_csv_has_a_row_per_request_after_the_summary(tmp_path):
    report = _report()
    write_csv(report, tmp_path / "locust_replay.csv")
    rows = list(csv.reader((tmp_path / "locust_replay.csv").open()))
    header = rows.index(["type", "name", "sent", "not_sent", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms",
                         "in_flight_max"])
    summary = dict(zip(rows[header - 3], rows[header - 2]))  # the overall row stays, above a blank line
    assert summary["sent"] == "4" and summary["lateness_max_ms"] == "40.0"
    assert rows[header + 1:] == [["POST", "deposit", "1", "0", "40.0", "40.0", "40.0", "0"],
                                 ["GET", "retrieve", "0", "1", "", "", "", "0"],    # none left: no lateness
                                 ["GET", "search", "3", "0", "2.0", "3.0", "3.0", "0"],
                                 ["", "Aggregated", "4", "1", "2.0", "40.0", "40.0", "0"]]


def test_the_html_report_gains_the_overall_table_and_a_row_per_request(tmp_path):
    page = tmp_path / "locust.html"
    page.write_text("<html><body><div>Locust's report</div></body></html>")
    assert annotate(page, _report())
    text = page.read_text()
    operations = text[text.index("segur-replay-operations"):]
    assert text.index("lateness p99") < text.index("segur-replay-operations")  # the overall table first
    assert "<td>GET</td><td>search</td><td>3</td><td>0</td><td>2.0</td><td>3.0</td><td>3.0</td>" in operations
    assert "<td>GET</td><td>retrieve</td><td>0</td><td>1</td><td>–</td>" in operations
    assert operations.index("search") < operations.index("Aggregated")
    assert not annotate(page, _report())  # once


def test_a_report_of_before_has_no_rows_per_request(tmp_path):
    report = {key: value for key, value in _report().items() if key != "operations"}
    write_csv(report, tmp_path / "locust_replay.csv")
    rows = list(csv.reader((tmp_path / "locust_replay.csv").open()))
    assert rows[-2][0] == "sent" and rows[-1][0] == "4"
    page = tmp_path / "locust.html"
    page.write_text("<html><body></body></html>")
    assert annotate(page, report) and "segur-replay-operations" not in page.read_text()
