"""Headless Debian chromium driven by selenium, for the report's browser test and benchmark.

The browser runs with a fresh profile and with everything that could reach the network on its
own switched off, and records console and performance (network) logs, so a test can assert the
page made no request other than loading itself.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium, in the dev extra)"
    return None


def _binary(path: str) -> str:
    return path if Path(path).exists() else (shutil.which(Path(path).name) or path)


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless chromium WebDriver with browser and performance logs enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="evolm-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = _binary(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(_binary(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested_urls(driver: Any) -> list[str]:
    """URLs the page requested, from the performance log (Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def severe_console(driver: Any) -> list[str]:
    """Console messages of level SEVERE (errors)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_drawn(driver: Any, timeout: float = 60.0) -> None:
    """Wait until the page's script ran and every plot div holds an SVG."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "if (document.body.getAttribute('data-ready') !== '1') return false;"
            "var plots = document.querySelectorAll('div.plot');"
            "return plots.length > 0 && Array.prototype.every.call(plots,"
            " function (p) { return p.querySelector('svg') !== null; });"
        )
    )
