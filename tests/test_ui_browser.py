"""``research ui`` in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium): the runs page loads, the cost chart draws, Approve continues a waiting run, and a source
titled ``<script>alert(1)</script>`` runs nothing anywhere it is shown."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from tests.helpers import CORPUS, research_run
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI
from tests.test_ui import HOSTILE_PAGE, HOSTILE_QUESTION, HOSTILE_TITLE, make_run, ui_server, wait_for_status

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--window-size=1280,900")


@pytest.fixture
def browser(tmp_path):
    """A fresh headless Chromium; the tests skip, saying why, only when it cannot be had here."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            pytest.skip(f"{path} is missing: install Debian's {package} package (.ci/run does when it may)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium would not start: {exc.msg or exc}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def no_script_ran(driver) -> None:
    """Neither the alert nor the hostile question's script ran on the page now shown."""
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text
    assert driver.execute_script("return window.__pwned === undefined")
    assert driver.title != "pwned"


def test_the_runs_page_loads_and_the_cost_chart_draws(tmp_path, browser):
    from selenium.webdriver.common.by import By

    cache = tmp_path / "cache"
    (tmp_path / "notes").mkdir()
    for path in sorted(CORPUS.iterdir())[:3]:
        (tmp_path / "notes" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "research.toml").write_text(
        '[reports.nightly]\nquestion = "Do heat pumps work in cold climates?"\nfiles = ["notes"]\n'
        'models = ["openai:gpt-4o-mini"]\nschedule = "0 6 * * *"\n')
    fake = OpenAIAPI(key="sk-chart")
    with serve(fake) as server:  # a priced model, so the nights cost something
        env = subprocess_env(OPENAI_API_KEY="sk-chart", OPENAI_BASE_URL=f"{server.url}/v1")
        for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
            result = research_run("report", "run", "nightly", "--at", day, "--cache-dir", cache, "--quiet",
                                  env=env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
    with ui_server(tmp_path, cache) as ui:
        browser.get(f"{ui.url}/runs")
        assert browser.title == "Runs · research"
        rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tr.run")
        assert len(rows) == 3 and "nightly@2026-11-22T06:00Z" in rows[0].text
        assert browser.find_element(By.CSS_SELECTOR, "link[rel=stylesheet]")  # the page is styled ...
        header = browser.find_element(By.CSS_SELECTOR, "table.runs th")
        assert header.value_of_css_property("font-weight") in ("600", "bold")  # ... by the stylesheet it loaded

        browser.get(f"{ui.url}/reports")
        chart = browser.find_element(By.CSS_SELECTOR, "#report-nightly svg.chart")
        assert chart.size["width"] > 100 and chart.size["height"] > 100
        bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
        assert len(bars) == 3
        heights = [bar.rect["height"] for bar in bars]  # as drawn, oldest night first
        assert all(h > 0 for h in heights)
        assert heights[0] > heights[1] and heights[0] > heights[2]  # the first night paid for every summary
        assert bars[0].value_of_css_property("fill") != "none"


def test_approve_in_the_browser_continues_a_waiting_run(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    cache = tmp_path / "cache"
    make_run(tmp_path, cache, "w", "--approve", "report")
    with ui_server(tmp_path, cache) as ui:
        browser.get(f"{ui.url}/runs/w")
        first = browser.current_window_handle
        browser.switch_to.new_window("tab")  # a second tab on the same waiting run
        browser.get(f"{ui.url}/runs/w")
        second = browser.current_window_handle
        browser.switch_to.window(first)
        assert "Waiting for approval" in browser.page_source
        browser.find_element(By.ID, "note").send_keys("Lead with the running costs.")
        browser.find_element(By.CSS_SELECTOR, "button.approve").click()
        WebDriverWait(browser, 20).until(expected_conditions.url_contains("did=approved"))
        assert "Approved; continuing in the background" in browser.find_element(By.CSS_SELECTOR, "p.done").text
        run = wait_for_status(cache, "w", "completed")
        assert run["attempts"] == 2
        browser.get(f"{ui.url}/runs/w")
        assert browser.find_element(By.CSS_SELECTOR, "h1 .status").text == "completed"
        assert not browser.find_elements(By.CSS_SELECTOR, "button.approve")
        # The second tab still shows the buttons: approving there is told, not continued twice.
        browser.switch_to.window(second)
        browser.find_element(By.CSS_SELECTOR, "button.approve").click()
        assert "is not waiting for approval (it is completed)" in browser.find_element(By.CSS_SELECTOR, "p.message").text
        time.sleep(1)
        assert wait_for_status(cache, "w", "completed")["attempts"] == 2


def test_a_page_titled_script_runs_no_script(tmp_path, browser):
    from selenium.webdriver.common.by import By

    cache = tmp_path / "cache"
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "page.html").write_text(HOSTILE_PAGE)
    make_run(tmp_path, cache, "evil", "--format", "md,html,json", question=HOSTILE_QUESTION, files=tmp_path / "pages")
    with ui_server(tmp_path, cache) as ui:
        for path in ("/runs", "/runs/evil", "/runs/evil/report", "/runs/evil/report/view"):
            browser.get(f"{ui.url}{path}")
            time.sleep(0.2)  # time for anything that would run to run
            no_script_ran(browser)
        browser.get(f"{ui.url}/runs/evil/report")
        text = browser.find_element(By.TAG_NAME, "article").text
        assert HOSTILE_TITLE in text and "<script>window.__pwned" in text  # shown as text, not run

        browser.get(f"{ui.url}/runs/evil/report/view")
        frame = browser.find_element(By.CSS_SELECTOR, "iframe.report")
        assert frame.get_attribute("sandbox") == ""
        browser.switch_to.frame(frame)
        assert HOSTILE_TITLE in browser.find_element(By.TAG_NAME, "body").text
        browser.switch_to.default_content()
        no_script_ran(browser)

        # The report file opened on its own is sandboxed by its own policy: still nothing runs.
        browser.get(f"{ui.url}/runs/evil/files/html")
        assert HOSTILE_TITLE in browser.find_element(By.TAG_NAME, "body").text
        no_script_ran(browser)
