"""Browser tests: Debian's chromium driven by Playwright for Python against the real app on a real socket.

One browser per module (launching is the slow part), a fresh context (cookies, storage) per test. The browser
is the system one (`scripts/ensure-chromium.sh` installs it); `playwright install` is never run: it downloads.
Every page records uncaught script errors and Content-Security-Policy violations; a test fails on any.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness, serving, start_harness

CHROMIUM = Path(os.environ.get("AGENTSERVER_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery"

playwright_api = pytest.importorskip("playwright.async_api")
if not CHROMIUM.exists():
    pytest.skip(f"no browser at {CHROMIUM} (scripts/ensure-chromium.sh installs it)", allow_module_level=True)

Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect
# A noisy shared machine: wait for what the page should show, for up to this long.
expect.set_options(timeout=20_000)


@dataclass
class Live:
    """The app on a real socket and the harness behind it."""

    harness: ChatHarness
    url: str


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            # Root in a container: chromium's sandbox needs user namespaces it may not have.
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield launched
        await launched.close()


async def live_app(settings: Settings) -> AsyncIterator[Live]:
    harness, lifespan = await start_harness(settings)
    try:
        async with serving(harness.asgi) as url:
            yield Live(harness, url)
    finally:
        await lifespan.__aexit__(None, None, None)


@dataclass
class PageProblems:
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )


@pytest.fixture
async def fake(live: Live) -> FakeChatModel:
    """The scripted model of the module's app (each module serves its own `live`), idle, with no script."""
    await live.harness.settle()
    live.harness.fake.set_script([])
    return live.harness.fake


@pytest.fixture
async def page_problems() -> PageProblems:
    return PageProblems()


async def new_page(
    browser: Any,
    problems: PageProblems,
    *,
    width: int = 1280,
    height: int = 820,
    locale: str = "en-US",
    dark: bool = False,
) -> Any:
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        locale=locale,
        color_scheme="dark" if dark else "light",
        reduced_motion="reduce",  # no transitions: screenshots and clicks see the final layout
        device_scale_factor=1,
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    problems.watch(page)
    return page


@pytest.fixture
async def page(browser: Any, page_problems: PageProblems) -> AsyncIterator[Any]:
    page = await new_page(browser, page_problems)
    yield page
    await page.context.close()
    assert page_problems.errors == []


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def register(page: Any, url: str, email: str | None = None) -> str:
    """Open the app and create an account through the login form; returns the email."""
    email = email or new_email()
    await page.goto(url)
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#register-button").click()
    await expect(page.locator("#app-view")).to_be_visible()
    await expect(page.locator("#user-email")).to_have_text(email)
    return email


async def send(page: Any, text: str) -> None:
    await page.locator("#input").fill(text)
    await page.locator("#input").press("Enter")


def last_answer(page: Any) -> Any:
    return page.locator(".msg.assistant").last
