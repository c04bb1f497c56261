"""The chat screen in a real browser: streaming, Markdown, tools, safety, stop, re-join, sessions, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from tests.browser.conftest import Live, expect, last_answer, live_app, register, send
from tests.chat.conftest import CHAT_OVERRIDES


@pytest.fixture(scope="module")
async def live(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[Live]:
    settings = await own_database_settings("agentserver_browser_chat", **CHAT_OVERRIDES)
    async for app in live_app(settings):
        yield app


@pytest.fixture
async def fake(live: Live) -> AsyncIterator[FakeChatModel]:
    await live.harness.settle()
    live.harness.fake.set_script([])
    yield live.harness.fake
    # A test that left the model waiting lets it finish, so the next test starts with an idle app.
    if live.harness.fake.gate is not None:
        live.harness.fake.gate.set()


class TestStreaming:
    async def test_thinking_then_streamed_tokens(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        gate = asyncio.Event()
        fake.set_script(["Hello there, nice to meet you."], gate=gate)
        await register(page, live.url)
        held: list[Any] = []
        await page.route("**/api/v1/chatbot/chat/stream", lambda route: held.append(route))

        await send(page, "Hi!")
        await expect(page.locator(".msg.user").last).to_have_text("Hi!")
        # The request has not been answered yet: the answer shows that it is thinking.
        await expect(last_answer(page).locator(".thinking")).to_be_visible()
        await expect(last_answer(page).locator(".thinking")).to_contain_text("Thinking")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Stop")
        while not held:
            await asyncio.sleep(0.05)
        await held[0].continue_()

        # The first word arrives, the rest waits on the model: a partial answer, no thinking indicator.
        await expect(last_answer(page).locator(".md")).to_have_text("Hello")
        await expect(last_answer(page).locator(".thinking")).to_be_hidden()
        gate.set()
        await expect(last_answer(page).locator(".md")).to_have_text("Hello there, nice to meet you.")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await expect(last_answer(page).locator(".msg-footer")).to_contain_text("tokens")
        # The chat took its name from the first message.
        await expect(page.locator(".session-item.active")).to_have_text("Hi!")
        await expect(page.locator("#session-title")).to_have_text("Hi!")
