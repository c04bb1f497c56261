"""Documents in a real browser: upload with the button or by dropping files, watch them become ready,
attach them to the chat, and open a file an answer cites."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.browser.conftest import SCREENSHOTS, Live, expect, last_answer, live_app, register, send
from tests.chat.conftest import CHAT_OVERRIDES
from tests.harness import drain_jobs

NOTES = b"# Trip notes\n\nThe ferry to Jeju leaves at 09:30 from Mokpo.\n"


@pytest.fixture(scope="module")
async def live(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[Live]:
    settings = await own_database_settings("agentserver_browser_documents", **CHAT_OVERRIDES)
    async for app in live_app(settings):
        yield app


@pytest.fixture
async def fake(live: Live) -> FakeChatModel:
    await drain_jobs(live.harness.state["sessionmaker"])
    await live.harness.settle()
    live.harness.fake.set_script([])
    return live.harness.fake


async def current_session(page: Any) -> str | None:
    value = await page.evaluate("sessionStorage.getItem('agentserver.session')")
    return value if isinstance(value, str) else None


class TestDocuments:
    async def test_upload_with_the_button_and_see_it_become_ready(
        self, live: Live, fake: FakeChatModel, page: Any
    ) -> None:
        fake.set_script(["Noted."])
        await register(page, live.url)
        await send(page, "Planning a trip")
        await expect(last_answer(page).locator(".md")).to_have_text("Noted.")
        session_id = await current_session(page)

        await page.get_by_role("button", name="Documents").click()
        await expect(page.locator("#dropzone")).to_be_visible()
        await page.locator("#file-input").set_input_files(
            files=[{"name": "trip-notes.md", "mimeType": "text/markdown", "buffer": NOTES}]
        )

        item = page.locator(".doc-item").filter(has_text="trip-notes.md")
        await expect(item).to_have_count(1)
        await expect(item.locator(".status")).to_have_text("Ready")
        await expect(item).to_contain_text("This chat")
        async with live.harness.client() as http:
            auth = await page.evaluate("JSON.parse(sessionStorage.getItem('agentserver.auth'))")
            listed = await http.get("/api/v1/files", headers={"Authorization": f"Bearer {auth['access']}"})
        [stored] = listed.json()["files"]
        assert (stored["name"], stored["status"], stored["session_id"]) == ("trip-notes.md", "ready", session_id)

    async def test_drop_files_and_see_a_refusal(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        await register(page, live.url, "ada@example.com")  # a fixed name: stable screenshots
        await page.get_by_role("button", name="Documents").click()
        await page.get_by_label("Attach new uploads to this chat").uncheck()

        await page.locator("#dropzone").evaluate(
            """(zone) => {
                const data = new DataTransfer();
                data.items.add(new File(["Ferry at 09:30."], "ferry.txt", { type: "text/plain" }));
                data.items.add(new File([new Uint8Array([0, 1, 2, 3, 255, 0, 7])], "blob.bin"));
                zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
            }"""
        )

        ready = page.locator(".doc-item").filter(has_text="ferry.txt")
        await expect(ready.locator(".status")).to_have_text("Ready")
        assert await ready.filter(has_text="This chat").count() == 0
        refused = page.locator(".doc-item").filter(has_text="blob.bin")
        await expect(refused.locator(".status")).to_have_text("Failed")
        await expect(refused.locator(".doc-reason")).not_to_be_empty()
        await page.screenshot(path=SCREENSHOTS / "documents-desktop-light.png", animations="disabled", caret="hide")

        await page.get_by_role("button", name="Delete document: ferry.txt").click()
        await expect(page.locator(".doc-item").filter(has_text="ferry.txt")).to_have_count(0)

    async def test_files_dropped_on_the_chat_are_attached_to_it(
        self, live: Live, fake: FakeChatModel, page: Any
    ) -> None:
        fake.set_script(["Sure."])
        await register(page, live.url)
        await send(page, "I will send you my notes")
        await expect(last_answer(page).locator(".md")).to_have_text("Sure.")

        await page.locator("#conversation").evaluate(
            """(chat) => {
                const data = new DataTransfer();
                data.items.add(new File(["# Notes\\n\\nBring a jacket."], "notes.md", { type: "text/markdown" }));
                for (const name of ["dragenter", "dragover", "drop"]) {
                    chat.dispatchEvent(new DragEvent(name, { dataTransfer: data, bubbles: true, cancelable: true }));
                }
            }"""
        )

        await expect(page.locator("#panel")).to_be_visible()
        item = page.locator(".doc-item").filter(has_text="notes.md")
        await expect(item.locator(".status")).to_have_text("Ready")
        await expect(item).to_contain_text("This chat")
        await expect(page.locator(".session-open")).to_have_text(["I will send you my notes"])

    async def test_an_answer_citing_a_file_opens_it(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["The ferry leaves at 09:30 (trip-notes.md, section Trip notes)."])
        await register(page, live.url)
        await page.get_by_role("button", name="Documents").click()
        await page.locator("#file-input").set_input_files(
            files=[{"name": "trip-notes.md", "mimeType": "text/markdown", "buffer": NOTES}]
        )
        await expect(page.locator(".doc-item .status")).to_have_text("Ready")
        await page.locator("#panel-close").click()

        await send(page, "When does the ferry leave?")

        citation = last_answer(page).locator("button.citation")
        await expect(citation).to_have_text("trip-notes.md")
        async with page.expect_download() as download_info:
            await citation.click()
        download = await download_info.value
        assert download.suggested_filename == "trip-notes.md"
        path = await download.path()
        assert path.read_bytes() == NOTES
