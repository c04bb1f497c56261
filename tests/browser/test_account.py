"""Accounts in a real browser: API keys, silent token refresh, logout that leaves nothing behind, account
deletion, and the Korean UI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.browser.conftest import (
    PASSWORD,
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
    settings = await own_database_settings("agentserver_browser_account", **CHAT_OVERRIDES)
    async for app in live_app(settings):
        yield app


async def stored_auth(page: Any) -> dict[str, Any]:
    raw = await page.evaluate("sessionStorage.getItem('agentserver.auth')")
    assert isinstance(raw, str)
    auth: dict[str, Any] = json.loads(raw)
    return auth


async def status_with(live: Live, key: str) -> int:
    async with live.harness.client() as http:
        return (await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})).status_code


class TestApiKeys:
    async def test_create_copy_once_and_revoke(self, live: Live, page: Any) -> None:
        await register(page, live.url)
        await page.get_by_role("button", name="Settings").first.click()
        await expect(page.locator("#panel")).to_be_visible()

        await page.get_by_label("Key name").fill("laptop script")
        await page.get_by_role("button", name="Create key").click()

        secret = page.locator("#key-created .secret-value")
        await expect(secret).to_be_visible()
        await expect(page.locator("#key-created")).to_contain_text("will not be shown again")
        key = await secret.text_content()
        assert key
        await page.locator("#key-created .copy-button").click()
        assert await page.evaluate("navigator.clipboard.readText()") == key
        item = page.locator(".key-item")
        await expect(item).to_have_count(1)
        await expect(item.locator(".key-name")).to_have_text("laptop script")
        assert await status_with(live, key) == 200
        # Shown once: reopening the panel lists the key without it.
        await page.locator("#panel-close").click()
        await page.get_by_role("button", name="Settings").first.click()
        await expect(page.locator(".key-item")).to_have_count(1)
        await expect(page.locator("#key-created")).to_be_hidden()
        assert key not in await page.content()

        await page.get_by_role("button", name="Revoke: laptop script").click()
        await page.locator("#confirm-ok").click()

        await expect(page.locator(".key-item")).to_have_count(0)
        await expect(page.locator("#panel")).to_contain_text("No API keys")
        assert await status_with(live, key) == 401


class TestTokens:
    async def test_an_expired_access_token_is_refreshed_silently(self, live: Live, page: Any) -> None:
        await register(page, live.url)
        before = await stored_auth(page)
        # The access token stops working (as after its 30 minutes): the next request refreshes and retries.
        await page.evaluate("state.auth.access = 'expired.token.value'")

        await page.get_by_role("button", name="Memory").click()

        await expect(page.locator("#memory-empty")).to_have_text("Nothing remembered yet")
        after = await stored_auth(page)
        assert after["refresh"] != before["refresh"]  # rotated
        assert after["access"] != "expired.token.value"
        await expect(page.locator("#login-view")).to_be_hidden()
        # The spent refresh token is no use to anyone.
        async with live.harness.client() as http:
            reused = await http.post("/api/v1/auth/refresh", json={"refresh_token": before["refresh"]})
        assert reused.status_code == 401

    async def test_a_token_about_to_expire_is_refreshed_before_use(self, live: Live, page: Any) -> None:
        await register(page, live.url)
        before = await stored_auth(page)
        await page.evaluate("state.auth.expiresAt = Date.now() + 1000")

        await page.get_by_role("button", name="Settings").first.click()

        await expect(page.locator("#panel")).to_contain_text("No API keys")
        assert (await stored_auth(page))["refresh"] != before["refresh"]


class TestLogout:
    async def test_logout_revokes_and_leaves_no_data_in_the_page(
        self, live: Live, fake: FakeChatModel, page: Any
    ) -> None:
        fake.set_script(["The secret word is PINEAPPLE-42."])
        email = await register(page, live.url)
        await send(page, "Remember zanzibar-secret-topic")
        await expect(last_answer(page).locator(".md")).to_have_text("The secret word is PINEAPPLE-42.")
        refresh = (await stored_auth(page))["refresh"]

        await page.get_by_role("button", name="Settings").first.click()
        await page.get_by_role("button", name="Log out").click()

        await expect(page.locator("#login-view")).to_be_visible()
        html = await page.content()
        for secret in ("PINEAPPLE", "zanzibar", email, refresh):
            assert secret not in html
        assert await page.evaluate("sessionStorage.length") == 0
        assert await page.locator("#messages *, #sessions *").count() == 0
        async with live.harness.client() as http:
            reused = await http.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert reused.status_code == 401
        # A reload does not bring anything back.
        await page.reload()
        await expect(page.locator("#login-view")).to_be_visible()
        assert "PINEAPPLE" not in await page.content()

    async def test_logout_with_an_expiring_access_token_still_revokes(self, live: Live, page: Any) -> None:
        await register(page, live.url)
        await page.evaluate("state.auth.expiresAt = Date.now() + 1000")
        await page.get_by_role("button", name="Settings").first.click()
        await expect(page.locator("#panel")).to_contain_text("No API keys")
        await page.evaluate("state.auth.expiresAt = Date.now() + 1000")

        async with page.expect_response("**/api/v1/auth/logout") as answered:
            await page.get_by_role("button", name="Log out").click()

        response = await answered.value
        assert response.status == 204
        sent = json.loads(response.request.post_data or "{}")["refresh_token"]
        async with live.harness.client() as http:
            reused = await http.post("/api/v1/auth/refresh", json={"refresh_token": sent})
        assert reused.status_code == 401
        await expect(page.locator("#login-view")).to_be_visible()


class TestDeleteAccount:
    async def test_delete_account(self, live: Live, fake: FakeChatModel, page: Any) -> None:
        fake.set_script(["Noted."])
        email = await register(page, live.url)
        await send(page, "Something personal")
        await expect(last_answer(page).locator(".md")).to_have_text("Noted.")

        await page.get_by_role("button", name="Settings").first.click()
        await page.locator("#delete-account").click()
        await expect(page.locator("#confirm")).to_contain_text("cannot be undone")
        await page.locator("#confirm-ok").click()

        await expect(page.locator("#login-error")).to_have_text("Your account and everything in it were deleted.")
        assert "Something personal" not in await page.content()
        await page.locator("#email").fill(email)
        await page.locator("#password").fill(PASSWORD)
        await page.locator("#login-button").click()
        await expect(page.locator("#login-error")).not_to_be_empty()
        await expect(page.locator("#app-view")).to_be_hidden()


class TestKorean:
    async def test_the_browser_language_picks_korean_and_can_be_switched(
        self, live: Live, fake: FakeChatModel, browser: Any, page_problems: PageProblems
    ) -> None:
        fake.set_script(["안녕하세요! 무엇을 도와드릴까요?"])
        page = await new_page(browser, page_problems, locale="ko-KR")
        try:
            await page.goto(live.url)
            await expect(page.locator("#login-button")).to_have_text("로그인")
            await expect(page.locator("#register-button")).to_have_text("계정 만들기")
            assert await page.locator("html").get_attribute("lang") == "ko"
            await page.locator("#email").fill("minji@example.com")  # a fixed name: stable screenshots
            await page.locator("#password").fill(PASSWORD)
            await page.locator("#register-button").click()
            await expect(page.get_by_role("button", name="새 대화")).to_be_visible()
            await expect(page.locator("#input")).to_have_attribute("placeholder", "메시지를 입력하세요")
            await expect(page.locator(".empty-state h2")).to_have_text("무엇을 도와드릴까요?")
            await send(page, "안녕")
            await expect(last_answer(page).locator(".md")).to_have_text("안녕하세요! 무엇을 도와드릴까요?")
            await expect(page.locator("#send")).to_have_attribute("aria-label", "보내기")

            await page.get_by_role("button", name="설정").first.click()
            await page.get_by_label("언어", exact=True).select_option("en")

            await expect(page.locator("#panel-title")).to_have_text("Settings")
            await expect(page.get_by_role("button", name="New chat")).to_be_visible()
            assert await page.locator("html").get_attribute("lang") == "en"
            await page.get_by_label("Language", exact=True).select_option("ko")
            await page.locator("#panel-close").click()
            await page.screenshot(path=SCREENSHOTS / "chat-desktop-korean.png", animations="disabled", caret="hide")
        finally:
            await page.context.close()
        assert page_problems.errors == []


class TestEndedSession:
    async def test_a_revoked_session_goes_back_to_the_login_screen(self, live: Live, page: Any) -> None:
        await register(page, live.url)
        auth = await stored_auth(page)
        async with live.harness.client() as http:  # logged out elsewhere (another tab, an admin)
            await http.post(
                "/api/v1/auth/logout",
                json={"refresh_token": auth["refresh"]},
                headers={"Authorization": f"Bearer {auth['access']}"},
            )
        await page.evaluate(
            "const saved = JSON.parse(sessionStorage.getItem('agentserver.auth'));"
            "saved.access = 'expired.token.value';"
            "sessionStorage.setItem('agentserver.auth', JSON.stringify(saved));"
        )

        await page.reload()

        await expect(page.locator("#login-view")).to_be_visible()
        await expect(page.locator("#login-error")).to_have_text("Your session ended. Please log in again.")
        assert await page.evaluate("sessionStorage.length") == 0
