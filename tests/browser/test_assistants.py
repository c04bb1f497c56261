"""Choosing the assistant of a new chat in a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.browser.conftest import SCREENSHOTS, Live, expect, last_answer, live_app, register, send
from tests.chat.conftest import CHAT_OVERRIDES

ASSISTANTS_YAML = """
default: agent
assistants:
  - name: agent
    description: The everyday assistant.
  - name: poet
    description: Answers in verse.
    instructions: POET-INSTRUCTIONS answer in verse.
"""


@pytest.fixture(scope="module")
async def live(
    own_database_settings: Callable[..., Awaitable[Settings]], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    path = tmp_path_factory.mktemp("browser-assistants") / "assistants.yaml"
    path.write_text(ASSISTANTS_YAML, encoding="utf-8")
    settings = await own_database_settings("agentserver_browser_assistants", assistants_file=path, **CHAT_OVERRIDES)
    async for app in live_app(settings):
        yield app


def system_prompt(fake: FakeChatModel) -> str:
    return str(fake.prompts[-1][0].content)


class TestAssistantChoice:
    async def test_a_new_chat_talks_to_the_chosen_assistant(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["Roses are red."])
        await register(page, live.url, "ada@example.com")  # a fixed name: stable screenshots
        chooser = page.get_by_label("Assistant", exact=True)
        await expect(chooser.locator("option")).to_have_text(["agent", "poet"])
        await expect(chooser).to_have_value(await chooser.locator("option").first.get_attribute("value") or "")

        await chooser.select_option(label="poet")
        await expect(page.locator(".assistant-description")).to_have_text("Answers in verse.")
        await page.screenshot(path=SCREENSHOTS / "new-chat-desktop-light.png", animations="disabled", caret="hide")
        await send(page, "Write me a poem")

        await expect(last_answer(page).locator(".md")).to_have_text("Roses are red.")
        await expect(page.locator("#session-assistant")).to_have_text("poet")
        assert "POET-INSTRUCTIONS" in system_prompt(fake)
        # The chat keeps its assistant: after a reload, and for the next message.
        fake.set_script(["Violets are blue."])
        await page.reload()
        await expect(page.locator("#session-assistant")).to_have_text("poet")
        await send(page, "More")
        await expect(last_answer(page).locator(".md")).to_have_text("Violets are blue.")
        assert "POET-INSTRUCTIONS" in system_prompt(fake)

    async def test_the_default_assistant_without_a_choice(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["Hello."])
        await register(page, live.url)

        await send(page, "Hi")

        await expect(last_answer(page).locator(".md")).to_have_text("Hello.")
        assert "POET-INSTRUCTIONS" not in system_prompt(fake)
