"""Headless Chromium for the dashboard's browser tests: Debian's chromium and its chromedriver, driven by
Selenium, with no network beyond the live test server and a fresh profile."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"
WAIT_S = 30

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def missing_tools() -> list[str]:
    return [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]


def start_chromium(user_data_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(argument)
    # Both paths are given, so Selenium Manager has nothing to look up or download.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    return driver


def screenshot(driver, name: str) -> Path:
    """Save what the browser shows as test-artifacts/dashboard/NAME.png (the whole page's height)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 1000)")
    driver.set_window_size(1400, min(height + 40, 4000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(1400, 1000)
    return path


def console_log(driver) -> str:
    """The page's console messages since the last call (script errors among them)."""
    return "\n".join(f"{entry['level']}: {entry['message']}" for entry in driver.get_log("browser"))


def console_errors(driver) -> list[str]:
    """Script errors and failed requests logged since the last call; the browser's own probe for a
    /favicon.ico (pages of the admin and the API name none) is not the page's doing."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "/favicon.ico " not in entry["message"]
    ]


def wait_until(driver, condition, *, what: str, timeout: float = WAIT_S):
    """Wait for `condition(driver)` to be truthy and return it; on timeout fail with the page's console and
    a screenshot (test-artifacts/dashboard/failed-....png)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        shot = screenshot(driver, "failed-" + "".join(c if c.isalnum() else "-" for c in what)[:60])
        raise AssertionError(
            f"{what}: not within {timeout} s on {driver.current_url} (screenshot {shot.name})\n{console_log(driver)}"
        ) from None
