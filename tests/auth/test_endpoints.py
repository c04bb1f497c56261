"""`/api/v1/auth`: every endpoint, success and failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.auth.dependencies import get_user_deletion_hooks
from agentserver.auth.security import TokenType, issue_token
from agentserver.auth.service import UserDeletion, UserDeletionHook
from agentserver.config import Settings
from agentserver.kit.errors import ServiceUnavailable
from agentserver.models import ChatSession, Message, RefreshToken, User
from tests.factories import (
    DEFAULT_PASSWORD,
    access_token_for,
    create_chat_session,
    create_message,
    create_user,
)

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"

BAD_CREDENTIALS = {"error": "InvalidCredentials", "detail": "Incorrect email or password"}
BAD_REFRESH = {"error": "InvalidRefreshToken", "detail": "Invalid or expired refresh token"}
NOT_AUTHENTICATED = {"error": "Unauthorized", "detail": "Not authenticated"}
BAD_TOKEN = {"error": "Unauthorized", "detail": "Could not validate credentials"}


async def _login(client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, data={"username": email, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _logout(client: httpx.AsyncClient, caller: dict[str, str], refresh_token: str) -> httpx.Response:
    """POST /logout of `refresh_token`, authenticated with `caller`'s access token."""
    return await client.post(LOGOUT, json={"refresh_token": refresh_token}, headers=_bearer(caller["access_token"]))


def _claims(user_id: uuid.UUID) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": str(user_id),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": str(uuid.uuid4()),
        "type": "access",
    }


class TestRegister:
    async def test_creates_the_user_and_returns_it_without_the_hash(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        response = await client.post(REGISTER, json={"email": "alice@example.com", "password": "s3cret-enough"})

        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"id", "email", "created_at"}
        assert body["email"] == "alice@example.com"
        stored = await session.get(User, uuid.UUID(body["id"]))
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$")

    async def test_normalises_the_email(self, client: httpx.AsyncClient) -> None:
        response = await client.post(REGISTER, json={"email": "  Alice@Example.COM ", "password": "s3cret-enough"})

        assert response.status_code == 201
        assert response.json()["email"] == "alice@example.com"

    async def test_duplicate_email_is_409(self, client: httpx.AsyncClient, user: User) -> None:
        response = await client.post(REGISTER, json={"email": user.email, "password": "s3cret-enough"})

        assert response.status_code == 409
        assert response.json() == {
            "error": "EmailAlreadyRegistered",
            "detail": "An account with this email already exists",
        }

    async def test_duplicate_email_in_another_case_is_409(self, client: httpx.AsyncClient, user: User) -> None:
        response = await client.post(REGISTER, json={"email": user.email.upper(), "password": "s3cret-enough"})

        assert response.status_code == 409

    @pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", ""])
    async def test_malformed_email_is_422(self, client: httpx.AsyncClient, email: str) -> None:
        response = await client.post(REGISTER, json={"email": email, "password": "s3cret-enough"})

        assert response.status_code == 422
        assert response.json()["error"] == "ValidationError"
        assert response.json()["detail"].startswith("email: value is not a valid email address")

    async def test_overlong_email_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(REGISTER, json={"email": "a" * 400 + "@example.com", "password": "s3cret-enough"})

        assert response.status_code == 422

    @pytest.mark.parametrize(
        ("password", "detail"),
        [
            ("short", "password: password must be at least 8 characters long"),
            ("x" * 129, "password: password must be at most 128 characters long"),
            (" " * 10, "password: password must not be only whitespace"),
        ],
    )
    async def test_weak_password_is_422_with_a_clear_message(
        self, client: httpx.AsyncClient, password: str, detail: str
    ) -> None:
        response = await client.post(REGISTER, json={"email": "bob@example.com", "password": password})

        assert response.status_code == 422
        assert response.json()["detail"] == detail

    async def test_the_rejected_password_is_not_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.post(REGISTER, json={"email": "bob@example.com", "password": "tiny-pw"})

        assert "tiny-pw" not in response.text

    async def test_password_of_exactly_the_bounds_is_accepted(self, client: httpx.AsyncClient) -> None:
        shortest = await client.post(REGISTER, json={"email": "min@example.com", "password": "x" * 8})
        longest = await client.post(REGISTER, json={"email": "max@example.com", "password": "x" * 128})

        assert (shortest.status_code, longest.status_code) == (201, 201)

    async def test_unknown_fields_are_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            REGISTER, json={"email": "bob@example.com", "password": "s3cret-enough", "is_admin": True}
        )

        assert response.status_code == 422


class TestLogin:
    async def test_returns_a_bearer_pair(self, client: httpx.AsyncClient, user: User, settings: Settings) -> None:
        before = datetime.now(UTC).replace(microsecond=0)

        response = await _login(client, user.email)

        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_at", "refresh_token"}
        assert body["token_type"] == "bearer"
        expires_at = datetime.fromisoformat(body["expires_at"])
        lifetime = timedelta(minutes=settings.access_token_expire_minutes)
        assert before + lifetime <= expires_at <= datetime.now(UTC) + lifetime

    async def test_the_access_token_opens_me(self, client: httpx.AsyncClient, user: User) -> None:
        tokens = (await _login(client, user.email)).json()

        response = await client.get(ME, headers=_bearer(tokens["access_token"]))

        assert response.status_code == 200
        assert response.json()["id"] == str(user.id)

    async def test_the_tokens_carry_the_required_claims(
        self, client: httpx.AsyncClient, user: User, settings: Settings
    ) -> None:
        tokens = (await _login(client, user.email)).json()
        key = settings.jwt_secret_key.get_secret_value()

        access = jwt.decode(tokens["access_token"], key, algorithms=[settings.jwt_algorithm])
        refresh = jwt.decode(tokens["refresh_token"], key, algorithms=[settings.jwt_algorithm])

        assert set(access) == {"sub", "exp", "iat", "jti", "type"}
        assert (access["sub"], access["type"]) == (str(user.id), "access")
        assert (refresh["sub"], refresh["type"]) == (str(user.id), "refresh")
        assert access["jti"] != refresh["jti"]

    async def test_the_refresh_token_is_stored_hashed(
        self, client: httpx.AsyncClient, user: User, session: AsyncSession
    ) -> None:
        tokens = (await _login(client, user.email)).json()

        hashes = (await session.execute(select(RefreshToken.token_hash))).scalars().all()

        assert len(hashes) == 1
        assert tokens["refresh_token"] not in hashes[0]
        assert len(hashes[0]) == 64

    async def test_email_is_matched_case_insensitively(self, client: httpx.AsyncClient, user: User) -> None:
        response = await _login(client, f"  {user.email.upper()} ")

        assert response.status_code == 200

    async def test_wrong_password_is_401(self, client: httpx.AsyncClient, user: User) -> None:
        response = await _login(client, user.email, "not the password")

        assert response.status_code == 401
        assert response.json() == BAD_CREDENTIALS
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_unknown_email_is_the_same_401(self, client: httpx.AsyncClient) -> None:
        response = await _login(client, "nobody@example.com")

        assert response.status_code == 401
        assert response.json() == BAD_CREDENTIALS

    async def test_missing_password_is_422(self, client: httpx.AsyncClient, user: User) -> None:
        response = await client.post(LOGIN, data={"username": user.email})

        assert response.status_code == 422

    async def test_json_body_is_refused(self, client: httpx.AsyncClient, user: User) -> None:
        # OAuth2's password flow is a form post; JSON credentials are not accepted.
        response = await client.post(LOGIN, json={"username": user.email, "password": DEFAULT_PASSWORD})

        assert response.status_code == 422

    async def test_overlong_username_is_422(self, client: httpx.AsyncClient) -> None:
        response = await _login(client, "a" * 1000 + "@example.com")

        assert response.status_code == 422


class TestRefresh:
    async def test_returns_a_new_pair(self, client: httpx.AsyncClient, user: User) -> None:
        first = (await _login(client, user.email)).json()

        response = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

        assert response.status_code == 200
        second = response.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        assert (await client.get(ME, headers=_bearer(second["access_token"]))).status_code == 200

    async def test_the_new_refresh_token_rotates_again(self, client: httpx.AsyncClient, user: User) -> None:
        first = (await _login(client, user.email)).json()
        second = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()

        response = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})

        assert response.status_code == 200

    async def test_reusing_a_spent_token_is_401_and_revokes_the_family(
        self, client: httpx.AsyncClient, user: User
    ) -> None:
        first = (await _login(client, user.email)).json()
        second = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()

        reuse = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
        after = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})

        assert reuse.status_code == 401
        assert reuse.json() == BAD_REFRESH
        assert after.status_code == 401

    async def test_reuse_leaves_other_logins_alone(self, client: httpx.AsyncClient, user: User) -> None:
        phone = (await _login(client, user.email)).json()
        laptop = (await _login(client, user.email)).json()
        await client.post(REFRESH, json={"refresh_token": phone["refresh_token"]})

        await client.post(REFRESH, json={"refresh_token": phone["refresh_token"]})
        response = await client.post(REFRESH, json={"refresh_token": laptop["refresh_token"]})

        assert response.status_code == 200

    async def test_the_family_revocation_is_stored(
        self, client: httpx.AsyncClient, user: User, session: AsyncSession
    ) -> None:
        first = (await _login(client, user.email)).json()
        await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

        await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

        revoked = (await session.execute(select(RefreshToken.revoked_at))).scalars().all()
        assert len(revoked) == 2
        assert all(at is not None for at in revoked)

    async def test_an_access_token_is_not_a_refresh_token(self, client: httpx.AsyncClient, user: User) -> None:
        tokens = (await _login(client, user.email)).json()

        response = await client.post(REFRESH, json={"refresh_token": tokens["access_token"]})

        assert response.status_code == 401
        assert response.json() == BAD_REFRESH

    async def test_an_expired_refresh_token_is_401(
        self, client: httpx.AsyncClient, user: User, settings: Settings
    ) -> None:
        expired = issue_token(settings, user.id, TokenType.refresh, now=datetime.now(UTC) - timedelta(days=30))

        response = await client.post(REFRESH, json={"refresh_token": expired.token})

        assert response.status_code == 401

    async def test_a_validly_signed_but_never_issued_token_is_401(
        self, client: httpx.AsyncClient, user: User, settings: Settings
    ) -> None:
        forged = issue_token(settings, user.id, TokenType.refresh)

        response = await client.post(REFRESH, json={"refresh_token": forged.token})

        assert response.status_code == 401

    async def test_garbage_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post(REFRESH, json={"refresh_token": "garbage"})

        assert response.status_code == 401

    async def test_overlong_token_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(REFRESH, json={"refresh_token": "x" * 5000})

        assert response.status_code == 422

    async def test_a_deleted_users_refresh_token_is_401(
        self, client: httpx.AsyncClient, user: User, settings: Settings
    ) -> None:
        tokens = (await _login(client, user.email)).json()
        await client.delete(ME, headers=_bearer(tokens["access_token"]))

        response = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})

        assert response.status_code == 401


class TestLogout:
    async def test_revokes_the_refresh_token(self, client: httpx.AsyncClient, user: User) -> None:
        tokens = (await _login(client, user.email)).json()

        response = await _logout(client, tokens, tokens["refresh_token"])
        refresh = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})

        assert response.status_code == 204
        assert response.content == b""
        assert refresh.status_code == 401

    async def test_revokes_the_tokens_rotated_from_the_same_login(self, client: httpx.AsyncClient, user: User) -> None:
        first = (await _login(client, user.email)).json()
        second = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()

        await _logout(client, second, second["refresh_token"])
        response = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})

        assert response.status_code == 401

    async def test_logging_out_twice_is_204(self, client: httpx.AsyncClient, user: User) -> None:
        tokens = (await _login(client, user.email)).json()
        await _logout(client, tokens, tokens["refresh_token"])

        response = await _logout(client, tokens, tokens["refresh_token"])

        assert response.status_code == 204

    async def test_an_access_token_is_401(self, client: httpx.AsyncClient, user: User) -> None:
        tokens = (await _login(client, user.email)).json()

        response = await _logout(client, tokens, tokens["access_token"])

        assert response.status_code == 401
        assert response.json() == BAD_REFRESH

    async def test_without_an_access_token_is_401(self, client: httpx.AsyncClient, user: User) -> None:
        tokens = (await _login(client, user.email)).json()

        response = await client.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]})

        assert response.status_code == 401
        assert response.json() == NOT_AUTHENTICATED

    async def test_another_users_refresh_token_is_401(
        self, client: httpx.AsyncClient, user: User, other_user: User
    ) -> None:
        mine = (await _login(client, user.email)).json()
        theirs = (await _login(client, other_user.email)).json()

        response = await _logout(client, mine, theirs["refresh_token"])

        assert response.status_code == 401
        assert response.json() == BAD_REFRESH

    async def test_another_users_refresh_token_keeps_working(
        self, client: httpx.AsyncClient, user: User, other_user: User
    ) -> None:
        mine = (await _login(client, user.email)).json()
        theirs = (await _login(client, other_user.email)).json()

        await _logout(client, mine, theirs["refresh_token"])
        refresh = await client.post(REFRESH, json={"refresh_token": theirs["refresh_token"]})

        assert refresh.status_code == 200


class TestMe:
    async def test_returns_the_current_user(
        self, client: httpx.AsyncClient, user: User, auth_headers: dict[str, str]
    ) -> None:
        response = await client.get(ME, headers=auth_headers)

        assert response.status_code == 200
        body = response.json()
        assert (body["id"], body["email"]) == (str(user.id), user.email)
        assert datetime.fromisoformat(body["created_at"]) == user.created_at

    async def test_without_a_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get(ME)

        assert response.status_code == 401
        assert response.json() == NOT_AUTHENTICATED
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_garbage_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get(ME, headers=_bearer("not.a.jwt"))

        assert response.status_code == 401
        assert response.json() == BAD_TOKEN

    async def test_an_expired_token_is_401(self, client: httpx.AsyncClient, user: User, settings: Settings) -> None:
        token = access_token_for(settings, user, now=datetime.now(UTC) - timedelta(hours=1))

        response = await client.get(ME, headers=_bearer(token))

        assert response.status_code == 401
        assert response.json() == BAD_TOKEN

    async def test_alg_none_is_401(self, client: httpx.AsyncClient, user: User) -> None:
        token = jwt.encode(_claims(user.id), "", algorithm="none")

        response = await client.get(ME, headers=_bearer(token))

        assert response.status_code == 401

    async def test_a_token_signed_with_another_key_is_401(self, client: httpx.AsyncClient, user: User) -> None:
        token = jwt.encode(_claims(user.id), "another-key-that-is-long-enough-0123456789", algorithm="HS256")

        response = await client.get(ME, headers=_bearer(token))

        assert response.status_code == 401

    @pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
    async def test_a_token_with_another_algorithm_is_401(
        self, client: httpx.AsyncClient, user: User, settings: Settings
    ) -> None:
        token = jwt.encode(_claims(user.id), settings.jwt_secret_key.get_secret_value(), algorithm="HS512")

        response = await client.get(ME, headers=_bearer(token))

        assert response.status_code == 401

    async def test_a_token_without_a_type_is_401(
        self, client: httpx.AsyncClient, user: User, settings: Settings
    ) -> None:
        claims = _claims(user.id)
        del claims["type"]
        token = jwt.encode(claims, settings.jwt_secret_key.get_secret_value(), algorithm=settings.jwt_algorithm)

        response = await client.get(ME, headers=_bearer(token))

        assert response.status_code == 401

    async def test_a_refresh_token_is_not_an_access_token(self, client: httpx.AsyncClient, user: User) -> None:
        tokens = (await _login(client, user.email)).json()

        response = await client.get(ME, headers=_bearer(tokens["refresh_token"]))

        assert response.status_code == 401
        assert response.json() == BAD_TOKEN

    async def test_a_token_for_an_unknown_user_is_401(self, client: httpx.AsyncClient, settings: Settings) -> None:
        token = issue_token(settings, uuid.uuid4(), TokenType.access).token

        response = await client.get(ME, headers=_bearer(token))

        assert response.status_code == 401


@pytest.fixture
def deletion_hooks(app: FastAPI) -> Iterator[list[UserDeletionHook]]:
    hooks: list[UserDeletionHook] = []
    app.dependency_overrides[get_user_deletion_hooks] = lambda: hooks
    yield hooks
    app.dependency_overrides.pop(get_user_deletion_hooks, None)


class TestDeleteMe:
    async def test_deletes_the_user(
        self, client: httpx.AsyncClient, user: User, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        response = await client.delete(ME, headers=auth_headers)

        assert response.status_code == 204
        assert await session.get(User, user.id) is None

    async def test_the_access_token_stops_working(
        self, client: httpx.AsyncClient, user: User, auth_headers: dict[str, str]
    ) -> None:
        await client.delete(ME, headers=auth_headers)

        response = await client.get(ME, headers=auth_headers)

        assert response.status_code == 401

    async def test_erases_sessions_messages_and_refresh_tokens(
        self, client: httpx.AsyncClient, user: User, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        chat = await create_chat_session(session, user)
        await create_message(session, chat)
        await _login(client, user.email)

        await client.delete(ME, headers=auth_headers)

        counts = [
            (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (ChatSession, Message, RefreshToken)
        ]
        assert counts == [0, 0, 0]

    async def test_leaves_other_users_alone(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], other_user: User, session: AsyncSession
    ) -> None:
        others_chat = await create_chat_session(session, other_user)

        await client.delete(ME, headers=auth_headers)

        assert await session.get(User, other_user.id) is not None
        assert await session.get(ChatSession, others_chat.id) is not None

    async def test_runs_the_deletion_hooks_with_the_users_sessions(
        self,
        client: httpx.AsyncClient,
        user: User,
        auth_headers: dict[str, str],
        session: AsyncSession,
        deletion_hooks: list[UserDeletionHook],
    ) -> None:
        chats = [await create_chat_session(session, user) for _ in range(2)]
        seen: list[tuple[uuid.UUID, set[uuid.UUID]]] = []

        async def hook(deletion: UserDeletion) -> None:
            seen.append((deletion.user_id, set(deletion.session_ids)))

        deletion_hooks.append(hook)

        await client.delete(ME, headers=auth_headers)

        assert seen == [(user.id, {chat.id for chat in chats})]

    async def test_a_failing_hook_rolls_the_deletion_back(
        self,
        client: httpx.AsyncClient,
        user: User,
        auth_headers: dict[str, str],
        deletion_hooks: list[UserDeletionHook],
    ) -> None:
        async def failing(deletion: UserDeletion) -> None:
            raise ServiceUnavailable("memory store down")

        deletion_hooks.append(failing)

        response = await client.delete(ME, headers=auth_headers)
        deletion_hooks.clear()
        me = await client.get(ME, headers=auth_headers)

        assert response.status_code == 503
        assert me.status_code == 200

    async def test_without_a_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.delete(ME)

        assert response.status_code == 401


class TestFactories:
    async def test_a_factory_user_can_log_in(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session, email="factory@example.com")

        response = await _login(client, "factory@example.com")

        assert (user.email, response.status_code) == ("factory@example.com", 200)
