"""Drives Debian's headless Chromium (through chromedriver and Selenium) over the collector's
live view: waits for live data, reads one agent's row, opens the slowest invocation's waterfall,
reads its spans, and saves screenshots of both. Prints what it saw as JSON.

Usage: view_browser.py URL SERVICE AGENT OUT_DIR
"""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1600,1100", "--hide-scrollbars", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def row_figures(driver, service, agent):
    row = driver.find_element(By.CSS_SELECTOR, f'#agents tr[data-service="{service}"][data-agent="{agent}"]')
    figures = {}
    for cell in row.find_elements(By.CSS_SELECTOR, "td[data-field]"):
        field = cell.get_attribute("data-field")
        figures[field] = {
            "count": float(cell.get_attribute("data-count")),
            "text": cell.text,
            "p50": cell.get_attribute("data-p50"),
            "links": [link.get_attribute("title") for link in cell.find_elements(By.TAG_NAME, "a")],
        }
    return figures


def main():
    url, service, agent, out_dir = sys.argv[1:5]
    os.makedirs(out_dir, exist_ok=True)
    driver = browser()
    try:
        started = time.monotonic()
        driver.get(url)
        wait = WebDriverWait(driver, 60, poll_frequency=0.1)
        wait.until(lambda d: d.find_elements(
            By.CSS_SELECTOR, f'#agents tr[data-service="{service}"][data-agent="{agent}"]'))
        wall_to_row = time.monotonic() - started
        first_render = driver.execute_script(
            "const m = performance.getEntriesByName('agentrace-first-render'); return m.length ? m[0].startTime : null;")
        resources = driver.execute_script(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
            ".map(e => ({name: e.name, transfer: e.transferSize, body: e.decodedBodySize}));")
        figures = row_figures(driver, service, agent)
        driver.save_screenshot(os.path.join(out_dir, "overview.png"))

        slowest = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#slowest tbody tr"))[0]
        trace_id = slowest.get_attribute("data-trace-id")
        slowest.click()
        wait.until(lambda d: d.find_element(By.ID, "trace-id").text == trace_id
                   and d.find_elements(By.CSS_SELECTOR, "#waterfall .span-row"))
        rows = [{
            "span_id": row.get_attribute("data-span-id"),
            "parent_id": row.get_attribute("data-parent-id"),
            "depth": int(row.get_attribute("data-depth")),
            "service": row.get_attribute("data-service"),
        } for row in driver.find_elements(By.CSS_SELECTOR, "#waterfall .span-row")]
        section = driver.find_element(By.ID, "trace-section")
        driver.execute_script("arguments[0].scrollIntoView()", section)
        section.screenshot(os.path.join(out_dir, "waterfall.png"))
        console = [entry["message"] for entry in driver.get_log("browser")]
        print(json.dumps({
            "first_render_ms": first_render,
            "wall_to_row_s": wall_to_row,
            "resources": resources,
            "figures": figures,
            "trace_id": trace_id,
            "rows": rows,
            "console": console,
        }))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
