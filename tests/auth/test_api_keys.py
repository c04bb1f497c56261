"""`/api/v1/auth/api-keys`, and API keys as credentials (bearer and `x-api-key`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.auth.api_keys import MAX_KEYS_PER_USER, key_digest
from agentserver.models import ApiKey, User

KEYS = "/api/v1/auth/api-keys"
ME = "/api/v1/auth/me"
BAD_KEY = {"error": "Unauthorized", "detail": "Invalid, revoked or expired API key"}


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> httpx.Response:
    return await client.post(KEYS, json={"name": "laptop", **body}, headers=headers)


async def _key(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> str:
    response = await _create(client, headers, **body)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


class TestCreate:
    async def test_the_key_is_shown_once_and_stored_hashed(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        response = await _create(client, auth_headers)

        assert response.status_code == 201
        body = response.json()
        key = body["key"]
        assert key.startswith("ask_")
        assert len(key) == 47
        assert body["prefix"] == key[:12]
        assert body["name"] == "laptop"
        assert body["expires_at"] is None
        assert body["last_used_at"] is None
        row = await session.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(body["id"])))
        assert row is not None
        assert row.user_id == user.id
        assert row.key_hash == key_digest(key)
        assert key not in (row.key_hash, row.prefix, row.name)

    async def test_an_expiry_in_days(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        before = datetime.now(UTC)

        response = await _create(client, auth_headers, expires_in_days=30)

        expires_at = datetime.fromisoformat(response.json()["expires_at"])
        assert before + timedelta(days=30) <= expires_at <= datetime.now(UTC) + timedelta(days=30)

    async def test_a_blank_name_is_refused(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        response = await _create(client, auth_headers, name="   ")

        assert response.status_code == 422
        assert response.json()["detail"] == "name: Value error, name must not be blank"

    async def test_a_name_with_control_characters_is_refused(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await _create(client, auth_headers, name="a\x00b")

        assert response.status_code == 422

    async def test_an_expiry_of_zero_days_is_refused(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await _create(client, auth_headers, expires_in_days=0)

        assert response.status_code == 422

    async def test_the_number_of_keys_is_bounded(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        session.add_all(
            ApiKey(user_id=user.id, name=f"k{i}", prefix="ask_x", key_hash=uuid.uuid4().hex + uuid.uuid4().hex)
            for i in range(MAX_KEYS_PER_USER)
        )
        await session.commit()

        response = await _create(client, auth_headers)

        assert response.status_code == 409
        assert response.json()["error"] == "TooManyApiKeys"

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post(KEYS, json={"name": "x"})

        assert response.status_code == 401


class TestList:
    async def test_the_callers_keys_newest_first_without_the_key(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        other_auth_headers: dict[str, str],
    ) -> None:
        await _create(client, auth_headers, name="first")
        await _create(client, auth_headers, name="second")
        await _create(client, other_auth_headers, name="not mine")

        response = await client.get(KEYS, headers=auth_headers)

        assert response.status_code == 200
        keys = response.json()["api_keys"]
        assert [k["name"] for k in keys] == ["second", "first"]
        assert all("key" not in k for k in keys)

    async def test_revoked_keys_are_not_listed(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        created = (await _create(client, auth_headers)).json()
        await client.delete(f"{KEYS}/{created['id']}", headers=auth_headers)

        response = await client.get(KEYS, headers=auth_headers)

        assert response.json() == {"api_keys": []}


class TestRevoke:
    async def test_a_revoked_key_is_refused_at_once(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        created = (await _create(client, auth_headers)).json()
        assert (await client.get(ME, headers={"Authorization": f"Bearer {created['key']}"})).status_code == 200

        revoked = await client.delete(f"{KEYS}/{created['id']}", headers=auth_headers)
        response = await client.get(ME, headers={"Authorization": f"Bearer {created['key']}"})

        assert revoked.status_code == 204
        assert response.status_code == 401
        assert response.json() == BAD_KEY

    async def test_another_users_key_is_404_and_keeps_working(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], other_auth_headers: dict[str, str]
    ) -> None:
        created = (await _create(client, other_auth_headers)).json()

        response = await client.delete(f"{KEYS}/{created['id']}", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == {"error": "ApiKeyNotFound", "detail": "API key not found"}
        assert (await client.get(ME, headers={"x-api-key": created["key"]})).status_code == 200

    async def test_revoking_twice_is_404(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        created = (await _create(client, auth_headers)).json()
        await client.delete(f"{KEYS}/{created['id']}", headers=auth_headers)

        response = await client.delete(f"{KEYS}/{created['id']}", headers=auth_headers)

        assert response.status_code == 404


class TestAuthenticate:
    async def test_as_a_bearer_token(self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User) -> None:
        key = await _key(client, auth_headers)

        response = await client.get(ME, headers={"Authorization": f"Bearer {key}"})

        assert response.status_code == 200
        assert response.json()["id"] == str(user.id)

    async def test_as_x_api_key(self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User) -> None:
        key = await _key(client, auth_headers)

        response = await client.get(ME, headers={"x-api-key": key})

        assert response.status_code == 200
        assert response.json()["id"] == str(user.id)

    async def test_an_unknown_key_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get(ME, headers={"x-api-key": "ask_" + "x" * 43})

        assert response.status_code == 401
        assert response.json() == BAD_KEY

    async def test_an_expired_key_is_401(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        key = await _key(client, auth_headers, expires_in_days=1)
        await session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == key_digest(key))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()

        response = await client.get(ME, headers={"x-api-key": key})

        assert response.status_code == 401
        assert response.json() == BAD_KEY

    async def test_a_disabled_users_key_is_401(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], user: User, session: AsyncSession
    ) -> None:
        key = await _key(client, auth_headers)
        assert (await client.get(ME, headers={"x-api-key": key})).status_code == 200
        await session.execute(update(User).where(User.id == user.id).values(disabled_at=datetime.now(UTC)))
        await session.commit()

        response = await client.get(ME, headers={"x-api-key": key})

        assert response.status_code == 401
        assert response.json() == BAD_KEY

    async def test_a_deleted_users_key_is_401(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        key = await _key(client, auth_headers)
        assert (await client.delete(ME, headers={"x-api-key": key})).status_code == 204

        response = await client.get(ME, headers={"x-api-key": key})

        assert response.status_code == 401

    async def test_first_use_records_the_time_and_a_use_within_a_minute_does_not_write(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        key = await _key(client, auth_headers)
        await client.get(ME, headers={"x-api-key": key})
        first = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.key_hash == key_digest(key)))

        await client.get(ME, headers={"x-api-key": key})
        second = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.key_hash == key_digest(key)))

        assert first is not None
        assert second == first

    async def test_a_use_after_a_minute_moves_the_time(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], session: AsyncSession
    ) -> None:
        key = await _key(client, auth_headers)
        long_ago = datetime.now(UTC) - timedelta(minutes=5)
        await session.execute(update(ApiKey).where(ApiKey.key_hash == key_digest(key)).values(last_used_at=long_ago))
        await session.commit()

        await client.get(ME, headers={"x-api-key": key})

        used = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.key_hash == key_digest(key)))
        assert used is not None
        assert used > long_ago + timedelta(minutes=4)
