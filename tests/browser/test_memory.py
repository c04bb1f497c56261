"""The memory panel in a real browser: list, search, forget one, forget everything."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.memory.service import MemoryService
from tests.browser.conftest import SCREENSHOTS, Live, expect, live_app, register
from tests.chat.conftest import CHAT_OVERRIDES


@pytest.fixture(scope="module")
async def live(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[Live]:
    settings = await own_database_settings("agentserver_browser_memory", **CHAT_OVERRIDES, memory_enabled=True)
    async for app in live_app(settings):
        yield app


async def remember(live: Live, page: Any, facts: list[str]) -> None:
    """Store facts for the page's user as said (no extraction model involved)."""
    auth = json.loads(await page.evaluate("sessionStorage.getItem('agentserver.auth')"))
    async with live.harness.client() as http:
        me = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {auth['access']}"})
    memory: MemoryService = live.harness.state["memory"]
    mem0: Any = memory.memory
    await memory.isolation.run(
        mem0.add([{"role": "user", "content": fact} for fact in facts], user_id=me.json()["id"], infer=False)
    )


class TestMemoryPanel:
    async def test_list_search_and_forget_one(self, live: Live, page: Any) -> None:
        await register(page, live.url, "ada@example.com")  # a fixed name: stable screenshots
        await remember(live, page, ["User lives in Busan", "User is allergic to peanuts"])

        await page.get_by_role("button", name="Memory").click()

        items = page.locator(".memory-item .memory-text")
        await expect(items).to_have_count(2)
        await expect(page.locator("#memory-list")).to_contain_text("User lives in Busan")
        await page.screenshot(path=SCREENSHOTS / "memory-desktop-light.png", animations="disabled", caret="hide")
        await page.get_by_label("Search memories").fill("peanut allergy")
        await expect(items.first).to_have_text("User is allergic to peanuts")
        await page.get_by_label("Search memories").fill("")
        await expect(items).to_have_count(2)

        await page.get_by_role("button", name="Forget: User lives in Busan").click()

        await expect(items).to_have_text(["User is allergic to peanuts"])
        async with live.harness.client() as http:
            auth = json.loads(await page.evaluate("sessionStorage.getItem('agentserver.auth')"))
            left = await http.get("/api/v1/memories", headers={"Authorization": f"Bearer {auth['access']}"})
        assert [m["text"] for m in left.json()["memories"]] == ["User is allergic to peanuts"]

    async def test_forget_everything(self, live: Live, page: Any) -> None:
        await register(page, live.url)
        await remember(live, page, ["User likes jazz", "User has a cat named Miso"])
        await page.get_by_role("button", name="Memory").click()
        await expect(page.locator(".memory-item")).to_have_count(2)

        await page.get_by_role("button", name="Forget everything").click()
        await expect(page.locator("#confirm")).to_contain_text("cannot be undone")
        await page.locator("#confirm-ok").click()

        await expect(page.locator(".memory-item")).to_have_count(0)
        await expect(page.locator("#memory-empty")).to_have_text("Nothing remembered yet")
