"""`/api/v1/sessions`: the caller's chat sessions; another user's session is always a 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.agent.assistants import DEFAULT_ASSISTANT_ID
from agentserver.models import ChatSession, Message, User
from agentserver.sessions.repository import ChatSessionRepository
from agentserver.sessions.service import SessionDeletion
from tests.factories import create_chat_session, create_message

SESSIONS = "/api/v1/sessions"
NOT_FOUND = {"error": "SessionNotFound", "detail": "Session not found"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class TestCreateSession:
    async def test_creates_a_session_with_the_default_name(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        response = await client.post(SESSIONS, json={}, headers=auth_headers)

        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"id", "name", "assistant_id", "created_at", "updated_at"}
        assert body["name"] == "New chat"
        assert body["assistant_id"] == str(DEFAULT_ASSISTANT_ID)
        stored = await session.get(ChatSession, uuid.UUID(body["id"]))
        assert stored is not None
        assert stored.user_id == user.id

    async def test_uses_the_given_name_trimmed(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        response = await client.post(SESSIONS, json={"name": "  Trip planning \n"}, headers=auth_headers)

        assert response.status_code == 201
        assert response.json()["name"] == "Trip planning"

    async def test_null_name_gets_the_default(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        response = await client.post(SESSIONS, json={"name": None}, headers=auth_headers)

        assert response.json()["name"] == "New chat"

    async def test_a_name_is_stored_verbatim(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        # Escaping belongs where names are rendered, not at input.
        response = await client.post(SESSIONS, json={"name": "<b>Tom & Jerry</b>"}, headers=auth_headers)

        assert response.json()["name"] == "<b>Tom & Jerry</b>"

    @pytest.mark.parametrize("name", ["", "   ", "x" * 201])
    async def test_an_empty_or_overlong_name_is_422(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], name: str
    ) -> None:
        response = await client.post(SESSIONS, json={"name": name}, headers=auth_headers)

        assert response.status_code == 422
        assert response.json()["error"] == "ValidationError"

    @pytest.mark.parametrize("name", ["a\x00b", "\x00"])
    async def test_a_nul_in_the_name_is_422(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], name: str
    ) -> None:
        response = await client.post(SESSIONS, json={"name": name}, headers=auth_headers)

        assert response.status_code == 422
        assert response.json()["detail"] == "name: name must not contain NUL characters"

    async def test_without_a_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post(SESSIONS, json={})

        assert response.status_code == 401


class TestListSessions:
    async def test_lists_the_callers_sessions_most_recently_updated_first(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        old = await create_chat_session(session, user, name="old", updated_at=_at(1))
        new = await create_chat_session(session, user, name="new", updated_at=_at(3))
        middle = await create_chat_session(session, user, name="middle", updated_at=_at(2))

        response = await client.get(SESSIONS, headers=auth_headers)

        assert response.status_code == 200
        body = response.json()
        assert [s["id"] for s in body["sessions"]] == [str(new.id), str(middle.id), str(old.id)]
        assert body["next_cursor"] is None

    async def test_excludes_other_users_sessions(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        user: User,
        other_user: User,
        session: AsyncSession,
    ) -> None:
        mine = await create_chat_session(session, user)
        await create_chat_session(session, other_user)

        response = await client.get(SESSIONS, headers=auth_headers)

        assert [s["id"] for s in response.json()["sessions"]] == [str(mine.id)]

    async def test_empty_list(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        response = await client.get(SESSIONS, headers=auth_headers)

        assert response.json() == {"sessions": [], "next_cursor": None}

    async def test_pages_through_everything_once(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        created = [await create_chat_session(session, user, updated_at=_at(i)) for i in range(5)]
        expected = [str(chat.id) for chat in reversed(created)]

        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            body = (await client.get(SESSIONS, params=params, headers=auth_headers)).json()
            pages.append([s["id"] for s in body["sessions"]])
            cursor = body["next_cursor"]
            if cursor is None:
                break

        assert pages == [expected[0:2], expected[2:4], expected[4:5]]

    async def test_a_full_last_page_has_no_next_cursor(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        for i in range(2):
            await create_chat_session(session, user, updated_at=_at(i))

        body = (await client.get(SESSIONS, params={"limit": 2}, headers=auth_headers)).json()

        assert (len(body["sessions"]), body["next_cursor"]) == (2, None)

    async def test_sessions_with_the_same_timestamp_are_neither_skipped_nor_repeated(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        created = [await create_chat_session(session, user, updated_at=_at(0)) for _ in range(3)]

        first = (await client.get(SESSIONS, params={"limit": 2}, headers=auth_headers)).json()
        second = (
            await client.get(SESSIONS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth_headers)
        ).json()

        seen = [s["id"] for s in first["sessions"] + second["sessions"]]
        assert sorted(seen) == sorted(str(chat.id) for chat in created)
        assert seen == sorted(seen, reverse=True)

    async def test_another_users_cursor_shows_only_the_callers_sessions(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        other_auth_headers: dict[str, str],
        user: User,
        other_user: User,
        session: AsyncSession,
    ) -> None:
        for i in range(3):
            await create_chat_session(session, other_user, updated_at=_at(i))
        mine = await create_chat_session(session, user, updated_at=_at(0))
        theirs = (await client.get(SESSIONS, params={"limit": 1}, headers=other_auth_headers)).json()

        response = await client.get(SESSIONS, params={"cursor": theirs["next_cursor"]}, headers=auth_headers)

        assert [s["id"] for s in response.json()["sessions"]] == [str(mine.id)]

    @pytest.mark.parametrize("cursor", ["garbage", "eyJ0IjoxfQ", "x" * 201, "!!!"])
    async def test_an_invalid_cursor_is_422(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], cursor: str
    ) -> None:
        response = await client.get(SESSIONS, params={"cursor": cursor}, headers=auth_headers)

        assert response.status_code == 422

    async def test_a_tampered_cursor_is_422_invalid_cursor(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        for i in range(2):
            await create_chat_session(session, user, updated_at=_at(i))
        cursor = (await client.get(SESSIONS, params={"limit": 1}, headers=auth_headers)).json()["next_cursor"]

        response = await client.get(SESSIONS, params={"cursor": cursor[:-3]}, headers=auth_headers)

        assert response.status_code == 422
        assert response.json()["error"] == "InvalidCursor"

    @pytest.mark.parametrize("limit", [0, 101, -1])
    async def test_a_limit_out_of_range_is_422(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], limit: int
    ) -> None:
        response = await client.get(SESSIONS, params={"limit": limit}, headers=auth_headers)

        assert response.status_code == 422

    async def test_without_a_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get(SESSIONS)

        assert response.status_code == 401


class TestGetSession:
    async def test_returns_the_callers_session(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        chat = await create_chat_session(session, user, name="Mine")

        response = await client.get(f"{SESSIONS}/{chat.id}", headers=auth_headers)

        assert response.status_code == 200
        assert (response.json()["id"], response.json()["name"]) == (str(chat.id), "Mine")

    async def test_another_users_session_is_404(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], other_user: User, session: AsyncSession
    ) -> None:
        theirs = await create_chat_session(session, other_user)

        response = await client.get(f"{SESSIONS}/{theirs.id}", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == NOT_FOUND

    async def test_an_unknown_session_is_404(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        response = await client.get(f"{SESSIONS}/{uuid.uuid4()}", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == NOT_FOUND

    async def test_a_malformed_id_is_422(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        response = await client.get(f"{SESSIONS}/not-a-uuid", headers=auth_headers)

        assert response.status_code == 422


class TestRenameSession:
    async def test_renames_the_session(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        chat = await create_chat_session(session, user, name="Before")

        response = await client.patch(f"{SESSIONS}/{chat.id}", json={"name": " After "}, headers=auth_headers)

        assert response.status_code == 200
        assert response.json()["name"] == "After"
        assert (await client.get(f"{SESSIONS}/{chat.id}", headers=auth_headers)).json()["name"] == "After"

    async def test_another_users_session_is_404_and_unchanged(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], other_user: User, session: AsyncSession
    ) -> None:
        # Ids are read up front: a failed request rolls back, which expires loaded objects.
        theirs_id = (await create_chat_session(session, other_user, name="Theirs")).id

        response = await client.patch(f"{SESSIONS}/{theirs_id}", json={"name": "Hijacked"}, headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        name = (await session.execute(select(ChatSession.name).where(ChatSession.id == theirs_id))).scalar_one()
        assert name == "Theirs"

    @pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": None}])
    async def test_a_missing_or_invalid_name_is_422(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        user: User,
        session: AsyncSession,
        body: dict[str, str | None],
    ) -> None:
        chat = await create_chat_session(session, user)

        response = await client.patch(f"{SESSIONS}/{chat.id}", json=body, headers=auth_headers)

        assert response.status_code == 422

    async def test_a_nul_in_the_name_is_422_and_the_name_unchanged(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        chat = await create_chat_session(session, user, name="Before")

        response = await client.patch(f"{SESSIONS}/{chat.id}", json={"name": "a\x00b"}, headers=auth_headers)

        assert response.status_code == 422
        assert (await client.get(f"{SESSIONS}/{chat.id}", headers=auth_headers)).json()["name"] == "Before"


class TestDeleteSession:
    async def test_deletes_the_session_and_its_messages(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        chat = await create_chat_session(session, user)
        await create_message(session, chat)

        response = await client.delete(f"{SESSIONS}/{chat.id}", headers=auth_headers)

        assert response.status_code == 204
        assert (await client.get(f"{SESSIONS}/{chat.id}", headers=auth_headers)).status_code == 404
        messages = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
        assert messages == 0

    async def test_another_users_session_is_404_and_kept(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], other_user: User, session: AsyncSession
    ) -> None:
        theirs_id = (await create_chat_session(session, other_user)).id

        response = await client.delete(f"{SESSIONS}/{theirs_id}", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        assert await session.get(ChatSession, theirs_id) is not None

    async def test_deleting_twice_is_404(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        chat = await create_chat_session(session, user)
        await client.delete(f"{SESSIONS}/{chat.id}", headers=auth_headers)

        response = await client.delete(f"{SESSIONS}/{chat.id}", headers=auth_headers)

        assert response.status_code == 404


class TestSessionDeletionHooks:
    async def test_run_with_the_deleted_sessions_id(
        self, app: FastAPI, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        chat_id = (await create_chat_session(session, user)).id
        seen: list[uuid.UUID] = []

        async def hook(deletion: SessionDeletion) -> None:
            seen.append(deletion.session_id)

        hooks = app.state.lifespan_state["session_deletion_hooks"]
        hooks.append(hook)
        try:
            await client.delete(f"{SESSIONS}/{chat_id}", headers=auth_headers)
        finally:
            hooks.remove(hook)

        assert seen == [chat_id]

    async def test_do_not_run_for_another_users_session(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        other_user: User,
        session: AsyncSession,
    ) -> None:
        theirs_id = (await create_chat_session(session, other_user)).id
        seen: list[uuid.UUID] = []

        async def hook(deletion: SessionDeletion) -> None:
            seen.append(deletion.session_id)

        hooks = app.state.lifespan_state["session_deletion_hooks"]
        hooks.append(hook)
        try:
            await client.delete(f"{SESSIONS}/{theirs_id}", headers=auth_headers)
        finally:
            hooks.remove(hook)

        assert seen == []


class TestChatSessionRepository:
    async def test_get_owned_returns_the_owners_session(self, session: AsyncSession, user: User) -> None:
        chat = await create_chat_session(session, user)

        found = await ChatSessionRepository.from_session(session).get_owned(user.id, chat.id)

        assert found is not None
        assert found.id == chat.id

    async def test_get_owned_returns_none_for_another_user(
        self, session: AsyncSession, user: User, other_user: User
    ) -> None:
        chat = await create_chat_session(session, user)

        found = await ChatSessionRepository.from_session(session).get_owned(other_user.id, chat.id)

        assert found is None

    async def test_get_owned_for_update_locks_and_returns_the_session(self, session: AsyncSession, user: User) -> None:
        chat = await create_chat_session(session, user)

        found = await ChatSessionRepository.from_session(session).get_owned(user.id, chat.id, for_update=True)

        assert found is not None
        assert found.id == chat.id
