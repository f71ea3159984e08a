"""A real browser (Debian's Chromium, driven by Playwright) starts a replay from Locust's web UI and sees
our planned-vs-achieved chart update."""

import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from load.schedule import describe
from tests.load.conftest import ROOT, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def web_ui(service, seeded, tmp_path):
    port = free_port()
    log = (tmp_path / "locust.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "load" / "locustfile.py"), "--schedule", str(seeded),
         "--host", service.url, "--key", str(service.key), "--speedup", "30", "--web-host", "127.0.0.1",
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


def test_start_from_the_form_and_watch_planned_against_achieved(web_ui, seeded):
    if CHROMIUM is None:
        pytest.fail("Chromium is missing: install Debian's chromium package (.ci/run does) to run the browser test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page()
        page.goto(web_ui + "/")
        # our options are in Locust's start form, with their values from the command line
        assert page.locator("input[name='speedup']").input_value() == "30"
        page.get_by_role("button", name="Start").click()

        page.goto(web_ui + "/replay/")
        page.wait_for_function("Number(document.getElementById('sent').textContent) > 0", timeout=30_000)
        first = int(page.locator("#chart").get_attribute("data-points") or 0)
        page.wait_for_function(f"Number(document.getElementById('chart').dataset.points) > {first}", timeout=30_000)
        assert int(page.locator("#planned-total").text_content()) == describe(seeded).rows  # the whole schedule
        page.screenshot(path=str(ROOT / "results" / "replay-page.png"))
        browser.close()
