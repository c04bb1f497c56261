"""Forged and stale JWTs are refused end to end: 401, the standard body, WWW-Authenticate, no detail."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.auth.security import TokenType, issue_token
from agentserver.config import Settings
from tests.factories import create_user

PROTECTED = [("GET", "/api/v1/auth/me"), ("GET", "/api/v1/sessions"), ("POST", "/api/v1/sessions")]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user_id: uuid.UUID, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": str(uuid.uuid4()),
        "type": "access",
    }
    claims.update(overrides)
    return claims


async def _assert_refused(client: httpx.AsyncClient, token: str) -> None:
    for method, path in PROTECTED:
        response = await client.request(method, path, headers={"Authorization": f"Bearer {token}"}, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.json() == {"error": "Unauthorized", "detail": "Could not validate credentials"}
        assert response.headers["WWW-Authenticate"] == "Bearer"


class TestForgedTokens:
    async def test_alg_none_is_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user.id))}."

        await _assert_refused(client, token)

    async def test_another_key_is_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        token = jwt.encode(_claims(user.id), "an-attacker-key-that-is-long-enough-to-pass", algorithm="HS256")

        await _assert_refused(client, token)

    @pytest.mark.filterwarnings("ignore:The HMAC key is")  # the attacker's key choice, not ours
    async def test_another_algorithm_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session)
        token = jwt.encode(_claims(user.id), settings.jwt_secret_key.get_secret_value(), algorithm="HS512")

        await _assert_refused(client, token)

    async def test_an_expired_token_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session)
        issued = datetime.now(UTC) - timedelta(minutes=settings.access_token_expire_minutes + 1)
        token = issue_token(settings, user.id, TokenType.access, now=issued).token

        await _assert_refused(client, token)

    async def test_a_refresh_token_does_not_open_the_api(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session)
        token = issue_token(settings, user.id, TokenType.refresh).token

        await _assert_refused(client, token)

    async def test_a_tampered_subject_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user, victim = await create_user(session), await create_user(session)
        header, _, signature = issue_token(settings, user.id, TokenType.access).token.split(".")
        token = f"{header}.{_b64(_claims(victim.id))}.{signature}"

        await _assert_refused(client, token)

    @pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 5000, "Bearer", "' OR 1=1 --"])
    async def test_malformed_tokens_are_refused(self, client: httpx.AsyncClient, token: str) -> None:
        response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})

        assert response.status_code == 401
        assert response.json()["error"] == "Unauthorized"
