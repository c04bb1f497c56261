"""The chat screen in a real browser: streaming, Markdown, tools, safety, stop, re-join, sessions, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, status_error, tool_call_turn
from tests.browser.conftest import (
    SCREENSHOTS,
    Live,
    PageProblems,
    expect,
    last_answer,
    live_app,
    new_page,
    register,
    send,
)
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
        arrived = asyncio.Event()

        async def hold(route: Any) -> None:
            held.append(route)
            arrived.set()

        await page.route("**/api/v1/chatbot/chat/stream", hold)

        await send(page, "Hi!")
        await expect(page.locator(".msg.user").last).to_have_text("Hi!")
        # The request has not been answered yet: the answer shows that it is thinking.
        await expect(last_answer(page).locator(".thinking")).to_be_visible()
        await expect(last_answer(page).locator(".thinking")).to_contain_text("Thinking")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Stop")
        await arrived.wait()
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


RICH_ANSWER = """Here is a quick comparison of **sorting algorithms**:

| Algorithm | Average | Stable |
|---|:-:|:-:|
| Merge sort | O(n log n) | yes |
| Quicksort | O(n log n) | no |

A merge sort in Python:

```python
def merge_sort(items):
    \"\"\"Sort a list, returning a new one.\"\"\"
    if len(items) <= 1:
        return items
    middle = len(items) // 2
    return merge(merge_sort(items[:middle]), merge_sort(items[middle:]))  # linear merge
```

1. Use `sorted()` in real code
2. It is *Timsort*: stable and fast"""


class TestRendering:
    async def test_markdown_code_and_a_tool_call(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(
            [tool_call_turn("calculator", {"expression": "1234*5678"}, content="Let me check. "), RICH_ANSWER]
        )
        await register(page, live.url)

        await send(page, "Compare sorting algorithms and compute 1234*5678")

        answer = last_answer(page)
        await expect(answer.locator(".codeblock")).to_be_visible()
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        tool = answer.locator("details.tool")
        await expect(tool).to_have_count(1)
        await expect(tool.locator("summary")).to_have_text("Used calculator")
        assert not await tool.evaluate("node => node.open")  # collapsed until asked
        await tool.locator("summary").click()
        await expect(tool.locator(".tool-args")).to_contain_text('"expression": "1234*5678"')
        await expect(tool.locator(".tool-result")).to_have_text("7006652")
        await expect(answer.locator("strong").first).to_have_text("sorting algorithms")
        await expect(answer.locator("table th")).to_have_text(["Algorithm", "Average", "Stable"])
        await expect(answer.locator("table tbody tr")).to_have_count(2)
        await expect(answer.locator("ol li")).to_have_count(2)
        await expect(answer.locator("ol li code")).to_have_text("sorted()")
        code = answer.locator(".codeblock code")
        await expect(answer.locator(".code-lang")).to_have_text("python")
        await expect(code.locator(".tok-k").first).to_have_text("def")
        await expect(code.locator(".tok-c")).to_have_text("# linear merge")
        source = await code.text_content()
        assert source is not None
        assert source.startswith("def merge_sort(items):\n")
        # Copy puts the code itself on the clipboard.
        await answer.locator(".codeblock .copy-button").click()
        await expect(answer.locator(".codeblock .copy-button")).to_contain_text("Copied")
        assert await page.evaluate("navigator.clipboard.readText()") == source
        # After a reload the stored answer renders the same way.
        await page.reload()
        await expect(last_answer(page).locator(".codeblock .tok-k").first).to_have_text("def")
        await expect(last_answer(page).locator("table th")).to_have_count(3)


class TestScreenshots:
    async def test_main_screens(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.goto(live.url)
        await expect(page.locator("#login-view")).to_be_visible()
        await page.screenshot(path=SCREENSHOTS / "login-desktop-light.png", animations="disabled", caret="hide")
        fake.set_script(
            [tool_call_turn("calculator", {"expression": "1234*5678"}, content="Let me check. "), RICH_ANSWER]
        )
        await register(page, live.url, "ada@example.com")  # a fixed name: stable screenshots
        await send(page, "Compare sorting algorithms, and what is 1234*5678?")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await expect(last_answer(page).locator(".codeblock")).to_be_visible()
        await page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
        await page.screenshot(path=SCREENSHOTS / "chat-desktop-light.png", animations="disabled", caret="hide")
        await page.locator("#theme-toggle").click()
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        await page.screenshot(path=SCREENSHOTS / "chat-desktop-dark.png", animations="disabled", caret="hide")
        await page.locator("#open-settings").click()
        await expect(page.locator("#panel")).to_be_visible()
        await page.screenshot(path=SCREENSHOTS / "settings-desktop-dark.png", animations="disabled", caret="hide")
        await page.locator("#panel-close").click()
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.screenshot(path=SCREENSHOTS / "chat-phone-dark.png", animations="disabled", caret="hide")
        await page.locator("#theme-toggle").click()
        await expect(page.locator("html")).to_have_attribute("data-theme", "light")
        await page.screenshot(path=SCREENSHOTS / "chat-phone-light.png", animations="disabled", caret="hide")
        await page.locator("#menu-button").click()
        await expect(page.locator("#sidebar")).to_be_in_viewport()
        await page.screenshot(path=SCREENSHOTS / "sessions-phone-light.png", animations="disabled", caret="hide")


XSS_USER = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> **not html**'
XSS_ANSWER = (
    'Sure: <img src=x onerror="window.pwned=3"> <script>window.pwned=4</script>\n\n'
    "[click me](javascript:window.pwned=5) <b>raw</b> `<i>code</i>`\n\n"
    "<svg onload=window.pwned=6></svg>"
)


class TestSafety:
    async def test_html_in_a_message_and_in_an_answer_is_shown_as_text(
        self, live: Live, fake: FakeChatModel, page: Any
    ) -> None:
        fake.set_script([XSS_ANSWER])
        await register(page, live.url)

        await send(page, XSS_USER)

        answer = last_answer(page)
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await expect(page.locator(".msg.user .msg-body")).to_have_text(XSS_USER)
        await expect(answer.locator(".md")).to_contain_text('<img src=x onerror="window.pwned=3">')
        await expect(answer.locator(".md")).to_contain_text("<b>raw</b>")
        await expect(answer.locator(".md code")).to_have_text("<i>code</i>")
        # The session got its name from the message: as text too.
        await expect(page.locator(".session-item.active .session-open")).to_contain_text("<img src=x")
        injected = ("img", "script", "svg:not(.icon)", "b", "i")
        for root in ("#messages", "#sessions", "#session-title"):
            assert await page.locator(", ".join(f"{root} {tag}" for tag in injected)).count() == 0
        assert await page.locator('#messages a[href^="javascript"]').count() == 0
        await expect(answer.locator(".md")).to_contain_text("click me")
        assert await page.evaluate("window.pwned") is None
        # And again from the stored history.
        await page.reload()
        await expect(last_answer(page).locator(".md")).to_contain_text("<b>raw</b>")
        assert await page.locator("#messages img, #messages script").count() == 0
        assert await page.evaluate("window.pwned") is None


class TestStopAndRejoin:
    async def test_stop_cancels_a_long_answer(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["Once upon a time there was a very long story"], gate=asyncio.Event())
        await register(page, live.url)

        await send(page, "Tell me a long story")
        await expect(last_answer(page).locator(".md")).to_have_text("Once")
        await page.keyboard.press("Escape")

        await expect(last_answer(page).locator(".badge")).to_have_text("Stopped")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await expect(last_answer(page).locator(".md")).to_have_text("Once")
        await live.harness.settle()
        assert [(m.role.value, m.content) for m in await live.harness.messages(await current_session(page))] == [
            ("user", "Tell me a long story"),
            ("assistant", "Once"),
        ]

    async def test_stop_button(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["Counting one two three four five"], gate=asyncio.Event())
        await register(page, live.url)

        await send(page, "Count")
        await expect(last_answer(page).locator(".md")).to_have_text("Counting")
        await page.get_by_role("button", name="Stop").click()

        await expect(last_answer(page).locator(".badge")).to_have_text("Stopped")
        await expect(page.get_by_role("button", name="Send")).to_be_enabled()

    async def test_a_reload_mid_answer_rejoins_it(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        gate = asyncio.Event()
        fake.set_script(["The answer survives a reload of the page."], gate=gate)
        await register(page, live.url)
        await send(page, "Keep going")
        await expect(last_answer(page).locator(".md")).to_have_text("The")

        await page.reload()
        # History, then the running answer from its first event, still being written.
        await expect(page.locator(".msg.user")).to_have_text(["Keep going"])
        await expect(last_answer(page).locator(".md")).to_have_text("The")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Stop")
        gate.set()

        await expect(last_answer(page).locator(".md")).to_have_text("The answer survives a reload of the page.")
        await expect(page.locator(".msg.assistant")).to_have_count(1)
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")


async def current_session(page: Any) -> str:
    session_id = await page.evaluate("sessionStorage.getItem('agentserver.session')")
    assert isinstance(session_id, str)
    return session_id


class TestSessions:
    async def test_rename_search_and_delete(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["About cats.", "About dogs."])
        await register(page, live.url)
        await send(page, "Tell me about cats")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await page.get_by_role("button", name="New chat").click()
        await expect(page.locator(".empty-state")).to_be_visible()
        await send(page, "Tell me about dogs")
        await expect(last_answer(page).locator(".md")).to_have_text("About dogs.")
        await expect(page.locator(".session-open")).to_have_text(["Tell me about dogs", "Tell me about cats"])

        await page.get_by_role("button", name="Rename: Tell me about cats").click()
        await page.get_by_label("New name for this chat").fill("Feline facts")
        await page.get_by_label("New name for this chat").press("Enter")
        await expect(page.locator(".session-open")).to_have_text(["Feline facts", "Tell me about dogs"])

        await page.get_by_label("Search chats").fill("feline")
        await expect(page.locator(".session-open")).to_have_text(["Feline facts"])
        await page.get_by_label("Search chats").fill("zebra")
        await expect(page.locator(".session-open")).to_have_count(0)
        await expect(page.locator("#sessions-empty")).to_have_text("No chat matches")
        await page.get_by_label("Search chats").fill("")

        await page.get_by_role("button", name="Delete: Tell me about dogs").click()
        await expect(page.locator("#confirm")).to_be_visible()
        await page.locator("#confirm-ok").click()
        await expect(page.locator(".session-open")).to_have_text(["Feline facts"])
        await expect(page.locator(".empty-state")).to_be_visible()  # the open chat was deleted
        # What the server has, after a reload.
        await page.reload()
        await expect(page.locator(".session-open")).to_have_text(["Feline facts"])
        await page.get_by_role("button", name="Feline facts", exact=True).click()
        await expect(page.locator(".msg.user")).to_have_text(["Tell me about cats"])
        await expect(page.locator("#session-title")).to_have_text("Feline facts")

    async def test_cancelled_delete_keeps_the_chat(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["Kept."])
        await register(page, live.url)
        await send(page, "Keep me")
        await expect(last_answer(page).locator(".md")).to_have_text("Kept.")

        await page.get_by_role("button", name="Delete: Keep me").click()
        await page.locator("#confirm-cancel").click()

        await expect(page.locator(".session-open")).to_have_text(["Keep me"])
        await page.reload()
        await expect(page.locator(".session-open")).to_have_text(["Keep me"])


class TestErrors:
    async def test_offline_keeps_the_text_and_retries(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["Back online."])
        await register(page, live.url)
        await page.route("**/api/v1/chatbot/chat/stream", lambda route: route.abort("internetdisconnected"))

        await send(page, "Are you there?")

        await expect(page.locator("#banner")).to_contain_text("Can't reach the server")
        await expect(page.locator("#input")).to_have_value("Are you there?")
        await expect(page.locator(".msg.user")).to_have_count(0)
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await page.unroute("**/api/v1/chatbot/chat/stream")
        await page.get_by_role("button", name="Retry").click()
        await expect(last_answer(page).locator(".md")).to_have_text("Back online.")
        await expect(page.locator("#banner")).to_be_hidden()
        await expect(page.locator("#input")).to_have_value("")

    async def test_rate_limited_says_how_long_to_wait(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        await register(page, live.url)
        await page.route(
            "**/api/v1/chatbot/chat/stream",
            lambda route: route.fulfill(
                status=429,
                headers={"Retry-After": "7"},
                content_type="application/json",
                body='{"error": "TooManyRequests", "detail": "Rate limit exceeded"}',
            ),
        )

        await send(page, "Quick question")

        await expect(page.locator("#banner")).to_contain_text("Too many messages. Try again in 7 s.")
        await expect(page.locator("#input")).to_have_value("Quick question")

    async def test_a_model_failure_is_said_plainly(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script([status_error(400, message="context too long")])
        await register(page, live.url)

        await send(page, "Hello?")

        await expect(last_answer(page).locator(".msg-error")).to_contain_text("The model could not answer")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")
        await expect(last_answer(page).locator(".thinking")).to_be_hidden()


class TestConnectionLoss:
    async def test_an_answer_survives_the_connection_dropping_mid_stream(
        self, live: Live, fake: FakeChatModel, page: Any
    ) -> None:
        fake.set_script(["Still here after the network came back."])
        await register(page, live.url)

        async def drop_after_the_first_word(route: Any) -> None:
            # The browser gets the stream up to the first token, then the network goes away.
            response = await route.fetch()
            frames = (await response.text()).split("\n\n")
            first_token = next(n for n, frame in enumerate(frames) if "event: token" in frame)
            await page.context.set_offline(True)
            body = "\n\n".join(frames[: first_token + 1]) + "\n\n"
            await route.fulfill(status=200, headers=response.headers, body=body)

        await page.route("**/api/v1/chatbot/chat/stream", drop_after_the_first_word)
        await send(page, "Talk to me")

        await expect(last_answer(page).locator(".thinking")).to_contain_text("The connection dropped")
        await expect(last_answer(page).locator(".md")).to_have_text("Still")
        await page.context.set_offline(False)

        await expect(last_answer(page).locator(".md")).to_have_text("Still here after the network came back.")
        await expect(last_answer(page).locator(".thinking")).to_be_hidden()
        await expect(page.locator(".msg.assistant")).to_have_count(1)
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Send")


class TestPhone:
    async def test_the_chat_list_opens_from_the_menu_at_phone_width(
        self, live: Live, fake: FakeChatModel, browser: Any, page_problems: PageProblems
    ) -> None:
        fake.set_script(["First.", "Second."])
        page = await new_page(browser, page_problems, width=390, height=844)
        try:
            await register(page, live.url)
            await expect(page.locator("#sidebar")).to_be_hidden()  # out of sight and of the tab order
            await send(page, "One")
            await expect(last_answer(page).locator(".md")).to_have_text("First.")
            await page.get_by_role("button", name="Open the chat list").click()
            await page.get_by_role("button", name="New chat").click()
            await expect(page.locator("#sidebar")).to_be_hidden()
            await send(page, "Two")
            await expect(last_answer(page).locator(".md")).to_have_text("Second.")

            await page.get_by_role("button", name="Open the chat list").click()
            await page.get_by_role("button", name="One", exact=True).click()

            await expect(page.locator("#sidebar")).to_be_hidden()
            await expect(page.locator(".msg.user")).to_have_text(["One"])
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        finally:
            await page.context.close()
        assert page_problems.errors == []
