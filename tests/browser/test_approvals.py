"""Approvals in a real browser: a tool that needs approval pauses the answer until the user decides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from tests.browser.conftest import SCREENSHOTS, Live, expect, last_answer, live_app, register, send
from tests.chat.conftest import CHAT_OVERRIDES


@pytest.fixture(scope="module")
async def live(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[Live]:
    settings = await own_database_settings(
        "agentserver_browser_approvals", **CHAT_OVERRIDES, tools_requiring_approval=["calculator"]
    )
    async for app in live_app(settings):
        yield app


def calculator_turn(expression: str) -> Any:
    return tool_call_turn("calculator", {"expression": expression}, content="Let me compute that. ")


class TestApprovals:
    async def test_approve_a_paused_tool(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script([calculator_turn("6*7"), "It is 42."])
        await register(page, live.url, "ada@example.com")  # a fixed name: stable screenshots

        await send(page, "What is 6 times 7?")

        card = last_answer(page).locator(".approval")
        await expect(card).to_be_visible()
        await expect(card).to_contain_text("calculator")
        await expect(card.locator("textarea")).to_have_value('{\n  "expression": "6*7"\n}')
        await expect(last_answer(page).locator(".tool-status")).to_have_text("calculator is waiting for your approval")
        await expect(last_answer(page).locator(".thinking")).to_be_hidden()
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.screenshot(path=SCREENSHOTS / "approval-phone-light.png", animations="disabled", caret="hide")
        await page.set_viewport_size({"width": 1280, "height": 820})
        await card.get_by_role("button", name="Approve").click()

        await expect(last_answer(page).locator(".approval-note")).to_have_text("Approved")
        await expect(last_answer(page).locator(".tool-status")).to_have_text("Used calculator")
        await expect(last_answer(page).locator(".md").last).to_have_text("It is 42.")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await last_answer(page).locator("details.tool summary").click()
        await expect(last_answer(page).locator(".tool-result")).to_have_text("42")

    async def test_edit_the_arguments_then_run(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script([calculator_turn("6*7"), "Done."])
        await register(page, live.url)
        await send(page, "What is 6 times 7?")
        card = last_answer(page).locator(".approval")

        await card.locator("textarea").fill('{"expression": "6*8"}')
        await card.get_by_role("button", name="Run with these arguments").click()

        await expect(last_answer(page).locator(".md").last).to_have_text("Done.")
        await last_answer(page).locator("details.tool summary").click()
        await expect(last_answer(page).locator(".tool-result")).to_have_text("48")

    async def test_reject(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script([calculator_turn("2**1000"), "Fine, I will not."])
        await register(page, live.url)
        await send(page, "Compute something big")

        await last_answer(page).locator(".approval").get_by_role("button", name="Reject").click()

        await expect(last_answer(page).locator(".approval-note")).to_have_text("Rejected")
        await expect(last_answer(page).locator(".md").last).to_have_text("Fine, I will not.")

    async def test_a_paused_answer_is_still_waiting_after_a_reload(
        self, live: Live, fake: FakeChatModel, page: Any
    ) -> None:
        fake.set_script([calculator_turn("1+1"), "Two."])
        await register(page, live.url)
        await send(page, "1+1?")
        await expect(last_answer(page).locator(".approval")).to_be_visible()

        await page.reload()

        card = last_answer(page).locator(".approval")
        await expect(card).to_be_visible()
        await card.get_by_role("button", name="Approve").click()
        await expect(last_answer(page).locator(".md").last).to_have_text("Two.")
