"""/api/v1/admin: usage of every user and per-user budgets, for operators only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agentserver.admin.service import admin as admin_service
from agentserver.kit.db import session_scope
from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness
from tests.factories import DEFAULT_PASSWORD, auth_headers_for, create_user
from tests.usage.conftest import admin_headers, chat, make_admin, user_id_of

ADMIN_CALLS = [
    ("GET", "/api/v1/admin/usage", None),
    ("GET", "/api/v1/admin/users/{user_id}/quota", None),
    ("PUT", "/api/v1/admin/users/{user_id}/quota", {"daily_tokens": 1}),
]


async def call(
    harness: ChatHarness, method: str, path: str, headers: dict[str, str], body: Any = None, **params: Any
) -> Any:
    async with harness.client() as http:
        return await http.request(method, path, json=body, params=params or None, headers=headers)


class TestOperatorsOnly:
    @pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
    async def test_a_normal_user_gets_a_403(
        self, usage_app: ChatHarness, method: str, path: str, body: dict[str, int] | None
    ) -> None:
        headers = await usage_app.new_user()
        user_id = await user_id_of(usage_app, headers)

        response = await call(usage_app, method, path.format(user_id=user_id), headers, body)

        assert response.status_code == 403
        assert response.json() == {"error": "AdminRequired", "detail": "This endpoint is for administrators"}

    @pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
    async def test_anonymous_gets_a_401(
        self, usage_app: ChatHarness, method: str, path: str, body: dict[str, int] | None
    ) -> None:
        response = await call(usage_app, method, path.format(user_id=uuid.uuid4()), {}, body)

        assert response.status_code == 401

    async def test_the_admin_role_is_enough(self, usage_app: ChatHarness) -> None:
        headers = await usage_app.new_user()
        await make_admin(usage_app, headers)

        response = await call(usage_app, "GET", "/api/v1/admin/usage", headers)

        assert response.status_code == 200


class TestAllUsage:
    async def test_grouped_by_user_it_shows_every_users_runs(self, usage_app: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["one two", "three four five"])
        alice, bob = await usage_app.new_user(), await usage_app.new_user()
        for headers in (alice, bob):
            assert (await chat(usage_app, headers, await usage_app.new_session(headers), "hi")).status_code == 200
        admin = await admin_headers(usage_app)

        response = await call(usage_app, "GET", "/api/v1/admin/usage", admin, group_by="user")

        groups = {g["key"]: g for g in response.json()["groups"]}
        assert groups[str(await user_id_of(usage_app, alice))]["output_tokens"] == 2
        assert groups[str(await user_id_of(usage_app, bob))]["output_tokens"] == 3

    async def test_one_user_only(self, usage_app: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["one two"])
        alice = await usage_app.new_user()
        assert (await chat(usage_app, alice, await usage_app.new_session(alice), "hi")).status_code == 200
        alice_id = await user_id_of(usage_app, alice)

        response = await call(
            usage_app, "GET", "/api/v1/admin/usage", await admin_headers(usage_app), user_id=str(alice_id)
        )

        assert [(g["key"], g["runs"]) for g in response.json()["groups"]] == [(str(alice_id), 1)]


class TestUserQuota:
    async def test_overrides_replace_the_defaults_and_null_restores_them(self, usage_app: ChatHarness) -> None:
        user_id = await user_id_of(usage_app, await usage_app.new_user())
        admin = await admin_headers(usage_app)
        path = f"/api/v1/admin/users/{user_id}/quota"

        put = await call(usage_app, "PUT", path, admin, {"daily_tokens": 500, "monthly_cost_usd": "2.5"})
        restored = await call(usage_app, "PUT", path, admin, {"daily_tokens": None, "monthly_cost_usd": "2.5"})

        assert put.status_code == 200, put.text
        assert put.json()["overrides"] == {
            "daily_tokens": 500,
            "monthly_tokens": None,
            "daily_cost_usd": None,
            "monthly_cost_usd": "2.500000",
        }
        assert put.json()["effective"]["day"]["tokens_limit"] == 500
        assert put.json()["effective"]["month"]["cost_usd_limit"] == "2.500000"
        assert restored.json()["effective"]["day"]["tokens_limit"] == 0  # the deployment default: unlimited

    async def test_an_unknown_user_is_a_404(self, usage_app: ChatHarness) -> None:
        response = await call(
            usage_app, "GET", f"/api/v1/admin/users/{uuid.uuid4()}/quota", await admin_headers(usage_app)
        )

        assert response.status_code == 404

    async def test_negative_budgets_are_a_422(self, usage_app: ChatHarness) -> None:
        user_id = await user_id_of(usage_app, await usage_app.new_user())

        response = await call(
            usage_app,
            "PUT",
            f"/api/v1/admin/users/{user_id}/quota",
            await admin_headers(usage_app),
            {"daily_tokens": -1},
        )

        assert response.status_code == 422


class TestDisabledAccounts:
    async def test_tokens_stop_working_and_login_is_refused(self, usage_app: ChatHarness) -> None:
        async with session_scope(usage_app.state["sessionmaker"]) as db:
            user = await create_user(db)
        headers = auth_headers_for(usage_app.settings, user)
        async with session_scope(usage_app.state["sessionmaker"]) as db:
            await admin_service.disable(db, user.email)

        async with usage_app.client() as http:
            me = await http.get("/api/v1/auth/me", headers=headers)
            login = await http.post("/api/v1/auth/login", data={"username": user.email, "password": DEFAULT_PASSWORD})
            wrong = await http.post("/api/v1/auth/login", data={"username": user.email, "password": "not it at all"})

        assert me.status_code == 401
        assert login.status_code == 401
        assert login.json() == {"error": "AccountDisabled", "detail": "This account is disabled"}
        assert wrong.json()["error"] == "InvalidCredentials"  # only the password's owner learns it is disabled
