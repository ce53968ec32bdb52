"""matrix.html in a real browser: Debian's chromium, headless, driven by selenium.

The page is opened from disk as a user would open it; the browser's network
use is turned off (this machine has none, and the page must need none).  The
screenshot it leaves (its path is printed) is the README's picture.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from libtrace.matrix.capabilities import column_title
from libtrace.matrix.report import REPORT_HTML, Cell, CellVerdict, ReportWriter, render

from .sample import FAILING, FAILING_LOG, FAILING_VERIFIER, PANIC_CONSOLE, sample_report

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: No sandbox (root in a container), no GPU, and nothing that phones home.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=2100,1150")  # fmt: skip


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            pytest.fail(f"{program} is missing: apt-get install chromium chromium-driver "
                        "(scripts/install-deps.sh)")  # fmt: skip
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def severe(driver: webdriver.Chrome) -> list[str]:
    """The console's errors since the last call (script errors, refused fetches)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def cell(driver: webdriver.Chrome, kernel: str, column: str) -> WebElement:
    index = [row.name for row in sample_report().kernels].index(kernel)
    return driver.find_element(
        By.CSS_SELECTOR, f'button.cell[data-row="{index}"][data-column="{column}"]'
    )


def test_the_page_shows_the_matrix_and_a_failing_cells_details(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    report = sample_report()
    ReportWriter(tmp_path, report).finish()
    browser.get((tmp_path / REPORT_HTML).as_uri())
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "shown").text)

    # No console errors; and the console is read (a probe error is seen), so that
    # an empty list means no error rather than no log.
    browser.execute_script("console.error('libtrace probe')")
    errors = severe(browser)
    assert len(errors) == 1 and "libtrace probe" in errors[0], errors

    # Every kernel (the booted ones first), and every column's heading.
    rows = {tr.find_element(By.TAG_NAME, "th").text.split()[0]: tr
            for tr in browser.find_elements(By.CSS_SELECTOR, "tr.kernel")}  # fmt: skip
    assert list(rows) == ["debian-5.10", "debian-6.1", "host", "4.19"]
    headings = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "th.capability")]
    assert headings == [column_title(name) for name in report.columns()]
    assert len(browser.find_elements(By.CSS_SELECTOR, "button.cell")) == sum(
        len(row.cells) for row in report.kernels
    )

    # The predicted-only row looks different: hatched cells, and a tag saying so.
    predicted = browser.find_element(By.CSS_SELECTOR, "tr.kernel.predicted")
    assert "predicted only" in predicted.text
    hatched = cell(browser, "4.19", "attach").value_of_css_property("background-image")
    assert "repeating-linear-gradient" in hatched
    booted = cell(browser, "host", "attach").value_of_css_property("background-image")
    assert booted == "none"

    # Clicking the failing cell opens its details: verdict, seconds, the log's end,
    # the verifier's message, the variant and the prediction.
    details = browser.find_element(By.ID, "details")
    assert not details.is_displayed()
    cell(browser, *FAILING).click()
    WebDriverWait(browser, 5).until(lambda d: details.is_displayed())
    failing = report.kernels[[r.name for r in report.kernels].index(FAILING[0])]
    assert browser.find_element(By.ID, "details-log").text == FAILING_LOG
    assert browser.find_element(By.ID, "details-verifier").text == FAILING_VERIFIER
    facts = browser.find_element(By.ID, "details-facts").text
    assert "✗ fail" in facts and "3.8" in facts  # 3.75 s, one decimal
    # predicted to load, it failed to: the prediction is marked wrong
    assert f"variant loaded\n{failing.variant}" in facts and "(NOT as predicted)" in facts
    screenshot = tmp_path / "matrix-html.png"
    browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")

    # A panicked cell shows the guest console's end.
    cell(browser, "debian-6.1", report.columns()[-1]).click()
    assert browser.find_element(By.ID, "details-console").text == PANIC_CONSOLE
    assert not browser.find_elements(By.ID, "details-log")  # a panic has no test log

    # Filters: without "pass" the all-pass host goes; without 5.10, the failing row goes.
    browser.find_element(By.CSS_SELECTOR, '#filters input[value="pass"]').click()
    assert not rows["host"].is_displayed() and rows["debian-5.10"].is_displayed()
    assert browser.find_element(By.ID, "shown").text == "showing 3 of 4 kernels"
    browser.find_element(By.CSS_SELECTOR, '#filters input[value="5.10"]').click()
    assert not rows["debian-5.10"].is_displayed() and rows["debian-6.1"].is_displayed()
    assert severe(browser) == []


def test_the_compared_page_lists_the_changes_and_each_opens_its_cell(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    old, new = sample_report(), sample_report()
    host = next(row for row in new.kernels if row.name == "host")
    host.cells["tcp_capture"] = Cell(CellVerdict.TIMEOUT, "the guest did not finish")
    render(tmp_path, new, old, "old/matrix.json")
    browser.get((tmp_path / REPORT_HTML).as_uri())

    changes = browser.find_element(By.ID, "changes")
    assert changes.find_element(By.TAG_NAME, "h2").text == "1 cell changed since old/matrix.json"
    changes.find_element(By.CSS_SELECTOR, "button.goto").click()
    facts = browser.find_element(By.ID, "details-facts").text
    assert "changed\npass → timeout" in facts and "the guest did not finish" in facts
    assert browser.find_element(By.ID, "details-title").text == "host · TCP"
    assert severe(browser) == []
