"""Headless Chromium from the system (Debian's `chromium`) driven by Playwright, for the site's
browser tests and screenshots: no browser download, and no request may leave the file system."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lt_bench.errors import UserError

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    """The system Chromium: $LT_BENCH_CHROMIUM, else the first of CHROMIUM_NAMES on the PATH."""
    return os.environ.get("LT_BENCH_CHROMIUM") or next(
        (path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None
    )


@dataclass
class Session:
    """An open page and what it saw: console errors, uncaught exceptions, requests refused because
    they were not for a file."""

    page: Any  # playwright.sync_api.Page
    errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)


@contextmanager
def browser_page(width: int = 1400, height: int = 900) -> Iterator[Session]:
    """A page of a headless system Chromium; requests for anything but file:// URLs are aborted
    and recorded."""
    executable = chromium_path()
    if executable is None:
        raise UserError(
            "no chromium on the PATH; install it (`apt-get install chromium`) or set LT_BENCH_CHROMIUM"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise UserError("playwright is not installed; `pip install -e '.[dev]'`") from error
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            session = Session(page)
            page.on(
                "console", lambda message: message.type == "error" and session.errors.append(message.text)
            )
            page.on("pageerror", lambda error: session.errors.append(str(error)))

            def guard(route: Any) -> None:
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    session.outside_requests.append(route.request.url)
                    route.abort()

            page.route("**/*", guard)
            yield session
        finally:
            browser.close()
