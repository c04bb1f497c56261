"""`/api/v1/memories`: the caller's memories only; 404 for anyone else's; 422 on bad input; empty when off.

The shared app runs with MEMORY_ENABLED=false; these tests plug the running memory service in through
the endpoint's dependency, the way the lifespan's `state["memory"]` would (TestDisabled does not).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from agentserver.llm.fake import FakeChatModel
from agentserver.memory.endpoints import get_memory_service
from agentserver.memory.service import MemoryService
from agentserver.models import User
from tests.memory.test_service import remember

URL = "/api/v1/memories"


@pytest.fixture
def memory_on(app: FastAPI, memory_service: MemoryService, scripted: FakeChatModel) -> Iterator[MemoryService]:
    app.dependency_overrides[get_memory_service] = lambda: memory_service
    yield memory_service
    app.dependency_overrides.pop(get_memory_service, None)


class TestList:
    async def test_lists_only_the_callers_memories(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        user: User,
        other_user: User,
        memory_on: MemoryService,
        scripted: FakeChatModel,
    ) -> None:
        await remember(memory_on, scripted, user.id, "User is vegetarian")
        await remember(memory_on, scripted, other_user.id, "User plays the cello")

        response = await client.get(URL, headers=auth_headers)

        assert response.status_code == 200
        assert [m["text"] for m in response.json()["memories"]] == ["User is vegetarian"]
        assert set(response.json()["memories"][0]) == {"id", "text", "created_at", "updated_at"}

    async def test_rejects_an_out_of_range_limit(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], memory_on: MemoryService
    ) -> None:
        response = await client.get(URL, params={"limit": 0}, headers=auth_headers)

        assert response.status_code == 422

    async def test_needs_authentication(self, client: httpx.AsyncClient, memory_on: MemoryService) -> None:
        response = await client.get(URL)

        assert response.status_code == 401


class TestSearch:
    async def test_finds_the_callers_memory_and_never_anyone_elses(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        user: User,
        other_user: User,
        memory_on: MemoryService,
        scripted: FakeChatModel,
    ) -> None:
        await remember(memory_on, scripted, user.id, "User lives in Busan")
        await remember(memory_on, scripted, other_user.id, "User is vegetarian")

        response = await client.get(f"{URL}/search", params={"q": "vegetarian food"}, headers=auth_headers)

        assert response.status_code == 200
        assert all(m["text"] != "User is vegetarian" for m in response.json()["memories"])

    async def test_returns_scored_hits(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        user: User,
        memory_on: MemoryService,
        scripted: FakeChatModel,
    ) -> None:
        await remember(memory_on, scripted, user.id, "User is vegetarian")

        response = await client.get(f"{URL}/search", params={"q": "dinner ideas"}, headers=auth_headers)

        (hit,) = response.json()["memories"]
        assert hit["text"] == "User is vegetarian"
        assert 0 < hit["score"] <= 1

    async def test_requires_a_query(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], memory_on: MemoryService
    ) -> None:
        response = await client.get(f"{URL}/search", headers=auth_headers)

        assert response.status_code == 422
        assert response.json()["error"] == "ValidationError"

    async def test_rejects_an_overlong_query(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], memory_on: MemoryService
    ) -> None:
        response = await client.get(f"{URL}/search", params={"q": "x" * 1001}, headers=auth_headers)

        assert response.status_code == 422


class TestDeleteOne:
    async def test_deletes_the_callers_memory(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        user: User,
        memory_on: MemoryService,
        scripted: FakeChatModel,
    ) -> None:
        await remember(memory_on, scripted, user.id, "User is vegetarian")
        (item,) = await memory_on.list(user.id)

        response = await client.delete(f"{URL}/{item.id}", headers=auth_headers)

        assert response.status_code == 204
        assert await memory_on.list(user.id) == []

    async def test_another_users_memory_is_not_found_and_stays(
        self,
        client: httpx.AsyncClient,
        auth_headers: dict[str, str],
        other_user: User,
        memory_on: MemoryService,
        scripted: FakeChatModel,
    ) -> None:
        owner_id = other_user.id  # read now: the failed request rolls the test transaction back
        await remember(memory_on, scripted, owner_id, "User plays the cello")
        (item,) = await memory_on.list(owner_id)

        response = await client.delete(f"{URL}/{item.id}", headers=auth_headers)

        assert response.status_code == 404
        assert response.json() == {"error": "MemoryNotFound", "detail": "Memory not found"}
        assert await memory_on.list(owner_id) == [item]

    async def test_an_unknown_id_is_not_found(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], memory_on: MemoryService
    ) -> None:
        response = await client.delete(f"{URL}/{uuid.uuid4()}", headers=auth_headers)

        assert response.status_code == 404

    async def test_a_malformed_id_is_rejected(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str], memory_on: MemoryService
    ) -> None:
        response = await client.delete(f"{URL}/not-a-uuid", headers=auth_headers)

        assert response.status_code == 422


class TestDisabled:
    async def test_lists_and_searches_are_empty(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        listed = await client.get(URL, headers=auth_headers)
        searched = await client.get(f"{URL}/search", params={"q": "vegetarian"}, headers=auth_headers)

        assert (listed.status_code, listed.json()) == (200, {"memories": []})
        assert (searched.status_code, searched.json()) == (200, {"memories": []})

    async def test_no_memory_id_exists(self, client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
        response = await client.delete(f"{URL}/{uuid.uuid4()}", headers=auth_headers)

        assert response.status_code == 404

    async def test_forgetting_everything_succeeds(
        self, client: httpx.AsyncClient, auth_headers: dict[str, str]
    ) -> None:
        response = await client.delete(URL, headers=auth_headers)

        assert response.status_code == 204
