"""Locust's web UI with our locustfile, in a real browser (Debian's Chromium, driven by Playwright): two replays
in a row from the start form, each with its own speed-up, and the Replay page showing the second one's chart
and numbers with the first still selectable. And a worker started in another directory than its master."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from load.interactions import operation_of
from load.schedule import describe
from tests.load.conftest import ROOT, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOCUSTFILE = str(ROOT / "load" / "locustfile.py")


@pytest.fixture
def web_ui(service, seeded, tmp_path):
    port = free_port()
    log = (tmp_path / "locust.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--schedule", str(seeded),
         "--host", service.url, "--key", str(service.key), "--speedup", "60", "--web-host", "127.0.0.1",
         "--web-port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            break
        except OSError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=30)


def _browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"])


def _by_schedule_operation(rows: list[dict], column: str) -> dict[str, int]:
    """The per-request rows (one per interaction, e.g. "consultation (xds)" / "first visit") added up by the
    schedule operation they play; a row that is no interaction fails."""
    counts: dict[str, int] = {}
    for row in rows:
        operation = operation_of(row.get("Type") or row.get("type"))
        assert operation is not None, row
        counts[operation] = counts.get(operation, 0) + int(row[column])
    return counts


def _table(page, selector: str) -> list[dict]:
    """The rows of the first table matching ``selector``, as {column title: cell text}."""
    return page.evaluate("""selector => {
        const table = document.querySelector(selector);
        const titles = [...table.querySelectorAll("thead th")].map(cell => cell.textContent.trim());
        return [...table.querySelectorAll("tbody tr")].map(row => Object.fromEntries(
            [...row.cells].map((cell, i) => [titles[i], cell.textContent.trim()])));
    }""", selector)


def test_two_replays_in_a_row_from_the_form(web_ui, seeded):
    """The smoke window (10 min) at 60x then 120x: about 12 s and 7 s."""
    if CHROMIUM is None:
        pytest.fail("Chromium is missing: install Debian's chromium package (.ci/run does) to run the browser test")
    from playwright.sync_api import sync_playwright

    rows = describe(seeded).rows
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(web_ui + "/")
        # the form leads with the speed-up (its value from the command line), says why users and ramp-up are
        # not asked, and Locust's header links to the Replay page
        speedup = page.locator("input[name='speedup']")
        assert speedup.input_value() == "60"
        assert page.locator("#segur-form-note").is_visible() and speedup.is_visible()
        assert "do not apply" in page.locator("#segur-form-note").text_content()
        assert page.locator("input[name='userCount']").is_hidden()
        assert page.locator("input[name='spawnRate']").is_hidden()
        page.get_by_role("button", name="Start").click()
        assert page.locator("#segur-replay-link").get_attribute("href").endswith("/replay/")

        # the first run ends by itself (every row sent and answered); a second one starts from the form
        page.get_by_role("button", name="New").wait_for(timeout=40_000)
        page.get_by_role("button", name="New").click()
        page.locator("input[name='speedup']").fill("120")
        page.get_by_role("button", name="Start").click()

        page.goto(web_ui + "/replay/")
        page.wait_for_function("document.getElementById('state').textContent === 'done' && "
                               "document.getElementById('number').textContent === '2'", timeout=40_000)
        page.wait_for_timeout(1200)  # one more refresh of the page, with the run's last figures
        assert page.locator("#speedup").text_content() == "120"
        assert int(page.locator("#planned-total").text_content()) == rows  # the whole schedule, anew
        assert int(page.locator("#sent").text_content()) == rows
        assert int(page.locator("#chart").get_attribute("data-points")) > 0
        options = page.locator("#run option").all_text_contents()
        assert len(options) == 2 and "run 2 · 120×" in options[0] and "run 1 · 60×" in options[1]
        # the rate chart is plotly's: the planned trace adds up to the schedule, the sent one to what was sent
        planned, sent = page.evaluate("[0, 1].map(i => document.getElementById('chart').data[i].y"
                                      ".reduce((a, b) => a + b, 0))")
        assert planned == sent == rows
        assert page.locator("#chart .main-svg").count() > 0 and page.locator("#lateness-chart .main-svg").count() > 0
        (ROOT / "results").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "results" / "replay-page.png"), full_page=True)

        # and, per request as Locust names them, what was sent and how late it left
        by_operation = describe(seeded).by_operation
        operations = _table(page, "#operations")
        assert operations[-1]["Name"] == "Aggregated" and int(operations[-1]["sent"]) == rows
        assert _by_schedule_operation(operations[:-1], "sent") == by_operation  # a row per interaction, as Locust

        # the first run is still there, under its own speed-up
        page.locator("#run").select_option("1")
        page.wait_for_function("document.getElementById('speedup').textContent === '60'", timeout=5_000)
        assert int(page.locator("#sent").text_content()) == rows

        # Locust's own UI: a Lateness tab beside its Statistics, a row per request with its figures
        page.goto(web_ui + "/")
        page.get_by_role("tab", name="Lateness").click()
        page.wait_for_function("[...document.querySelectorAll('table tbody tr')]"
                               ".some(row => row.cells[1] && row.cells[1].textContent === 'Aggregated')",
                               timeout=10_000)
        table = _table(page, "table")
        lateness = {(row["Type"], row["Name"]): row for row in table}
        assert int(lateness[("", "Aggregated")]["# sent"]) == rows
        assert _by_schedule_operation([row for row in table if row["Name"] != "Aggregated"], "# sent") == by_operation
        for row in lateness.values():
            assert 0 <= float(row["Lateness p50 (ms)"]) <= float(row["Lateness p99 (ms)"]) <= float(
                row["Lateness max (ms)"])
            assert int(row["Most in flight"]) >= 1 and int(row["In flight now"]) == 0
        assert {kind for kind, _ in lateness if kind} >= {"consultation (xds)", "deposit (xds)", "patient session (fhir)"}
        page.screenshot(path=str(ROOT / "results" / "locust-lateness-tab.png"), full_page=True)
        browser.close()

    runs = json.loads(urllib.request.urlopen(web_ui + "/replay/runs", timeout=5).read())
    assert [(run["number"], run["speedup"], run["state"], run["sent"]) for run in runs] == [
        (1, 60.0, "done", rows), (2, 120.0, "done", rows)]


def test_a_worker_started_elsewhere_reads_the_masters_files(service, seeded, tmp_path):
    """The master is given relative paths; its worker runs in another directory, with no --schedule of its own."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--headless", "--expect-workers", "1", "--schedule", seeded.name,
         "--key", os.path.relpath(service.key, seeded.parent), "--host", service.url, "--speedup", "100",
         "--run-tag", "worker-elsewhere", "--replay-report", str(tmp_path / "replay.json")],
        cwd=seeded.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    worker = subprocess.run([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--worker", "--master-host",
                             "127.0.0.1", "--master-port", str(port)], cwd=elsewhere, capture_output=True, text=True,
                            timeout=50)
    output, _ = master.communicate(timeout=30)
    assert "Traceback" not in worker.stderr, worker.stderr[-2000:]
    report = json.loads((tmp_path / "replay.json").read_text())
    assert report["schedule"] == str(seeded.resolve())  # sent absolute by the master
    assert report["workers"] == 1 and report["sent"] == report["planned"] == describe(seeded).rows, output[-2000:]
