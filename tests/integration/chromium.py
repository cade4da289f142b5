"""Headless Chromium for the Browser tests: whether it can run here, and a selenium driver on it.

Debian's ``chromium`` + ``chromedriver`` (``apt-get install chromium chromium-driver``);
``GRAPHREC_CHROMIUM`` / ``GRAPHREC_CHROMEDRIVER`` override the binaries.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

WINDOW = (1400, 1000)


# -- availability ---------------------------------------------------------------------------------


def chromium_binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = os.environ.get("GRAPHREC_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )
    driver = os.environ.get("GRAPHREC_CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium_missing() -> str | None:
    """Why :func:`screenshot_query` cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install selenium)"
    if chromium_binaries() is None:
        return "chromium/chromedriver not found (apt-get install chromium chromium-driver)"
    return None


def chromium_available() -> bool:
    return chromium_missing() is None


# -- the driver -----------------------------------------------------------------------------------


@contextmanager
def headless_chromium(window: tuple[int, int] = WINDOW) -> Iterator[Any]:
    """A selenium Chrome driver on headless Chromium; the viewport is exactly ``window``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binaries = chromium_binaries()
    if binaries is None:
        raise RuntimeError(chromium_missing() or "chromium not found")
    browser, chromedriver = binaries
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # we run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={window[0]},{window[1]}",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        width, height = window
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()
