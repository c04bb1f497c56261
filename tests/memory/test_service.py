"""MemoryService: extraction through mem0 with the scripted model, per-user isolation, the prompt
section, deletes and erasure. (The `memory.extract` job around `extract()`: test_jobs.py.)"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from langchain_core.messages import SystemMessage
from mem0.exceptions import LLMError
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, status_error
from agentserver.memory.extraction import extraction_prompt
from agentserver.memory.isolation import IsolatedLoop
from agentserver.memory.service import MemoryItem, MemoryService
from tests.memory.conftest import extraction


async def remember(memory: MemoryService, model: FakeChatModel, user_id: uuid.UUID, *facts: str) -> list[uuid.UUID]:
    """Run one extraction whose model answer is `facts` (stated by the user, so they pass the filter); the ids
    it added."""
    model.push(extraction(*facts))
    said = "My facts: " + ". ".join(facts)
    return await memory.extract(user_id, uuid.uuid4(), said, "(assistant reply)")


def metric(operation: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "agentserver_memory_operations_total", {"operation": operation, "outcome": outcome}
    )
    return value or 0.0


class TestExtraction:
    async def test_extracted_facts_are_searchable(self, memory_service: MemoryService, scripted: FakeChatModel) -> None:
        user = uuid.uuid4()

        await remember(memory_service, scripted, user, "User is vegetarian")
        hits = await memory_service.search(user, "What should I cook for dinner?", 5)

        assert [hit.text for hit in hits] == ["User is vegetarian"]
        assert hits[0].score is not None

    async def test_only_the_users_message_is_sent_to_the_model(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        scripted.push(extraction())

        await memory_service.extract(uuid.uuid4(), uuid.uuid4(), "I am vegetarian", "Noted, no meat.")

        prompt = scripted.prompts[0][-1].content
        assert prompt == "Already known:\n(nothing yet)\n\nThe user's message:\nI am vegetarian"

    async def test_a_question_is_not_sent_to_the_model(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        calls = len(scripted.calls)

        await memory_service.extract(user, None, "What is the capital of France?", "Paris.")

        assert (len(scripted.calls), await memory_service.list(user)) == (calls, [])

    async def test_facts_the_user_never_stated_are_not_stored(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        scripted.push(extraction("User lives in Busan", "User is vegetarian", "User likes green tea"))

        await memory_service.extract(user, None, "I like green tea in the morning", "Green tea is healthy.")

        assert [item.text for item in await memory_service.list(user)] == ["User likes green tea"]

    async def test_an_exchange_without_facts_stores_nothing(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()

        await remember(memory_service, scripted, user)

        assert await memory_service.list(user) == []

    async def test_returns_the_ids_it_added(self, memory_service: MemoryService, scripted: FakeChatModel) -> None:
        user = uuid.uuid4()

        added = await remember(memory_service, scripted, user, "User is vegetarian", "User lives in Busan")

        assert sorted(added) == sorted(item.id for item in await memory_service.list(user))

    async def test_a_model_failure_raises_and_is_counted(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        errors = metric("add", "error")
        scripted.push(status_error(400))

        with pytest.raises(LLMError):
            await memory_service.extract(user, None, "I am vegetarian", "Noted.")

        assert metric("add", "error") == errors + 1
        assert await memory_service.list(user) == []

    async def test_the_model_gets_the_compact_extraction_prompt(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        scripted.push(extraction())

        await memory_service.extract(uuid.uuid4(), None, "I am vegetarian", "Noted.")

        system = scripted.prompts[0][0]
        assert isinstance(system, SystemMessage)
        assert system.content == extraction_prompt("I am vegetarian")


class TestIsolation:
    async def test_search_never_returns_another_users_memories(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        x, y = uuid.uuid4(), uuid.uuid4()
        await remember(memory_service, scripted, y, "User is vegetarian")

        hits = await memory_service.search(x, "vegetarian", 10)

        assert hits == []

    async def test_list_shows_only_the_owners_memories(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        x, y = uuid.uuid4(), uuid.uuid4()
        await remember(memory_service, scripted, x, "User plays the cello")
        await remember(memory_service, scripted, y, "User is vegetarian")

        listed = await memory_service.list(x)

        assert [item.text for item in listed] == ["User plays the cello"]


class TestPromptSection:
    def test_lists_memories_best_first_one_per_line(self, memory_service: MemoryService) -> None:
        memories = [MemoryItem(uuid.uuid4(), "User is vegetarian"), MemoryItem(uuid.uuid4(), "Lives\nin  Busan")]

        assert memory_service.format_for_prompt(memories, 1000) == "- User is vegetarian\n- Lives in Busan"

    def test_stops_at_the_character_budget(self, memory_service: MemoryService) -> None:
        memories = [MemoryItem(uuid.uuid4(), "a" * 10), MemoryItem(uuid.uuid4(), "b" * 10)]

        assert memory_service.format_for_prompt(memories, 20) == "- " + "a" * 10

    def test_cuts_a_single_oversized_memory(self, memory_service: MemoryService) -> None:
        section = memory_service.format_for_prompt([MemoryItem(uuid.uuid4(), "x" * 500)], 50)

        assert len(section) == 50
        assert section.endswith("…")

    def test_no_memories_give_an_empty_section(self, memory_service: MemoryService) -> None:
        assert memory_service.format_for_prompt([]) == ""

    async def test_two_hundred_memories_stay_within_top_k_and_the_budget(
        self, memory_service: MemoryService, scripted: FakeChatModel, memory_settings: Settings
    ) -> None:
        user = uuid.uuid4()
        facts = [f"User fact number {n}: likes topic {n} with a fairly long description attached" for n in range(200)]
        # Stored as said (no extraction): the filter would rightly keep at most a few facts per message.
        mem0: Any = memory_service.memory
        await mem0.add([{"role": "user", "content": fact} for fact in facts], user_id=str(user), infer=False)

        recalled = await memory_service.recall(user, "Which topics does the user like?")
        section = memory_service.format_for_prompt(recalled)

        assert await memory_service.count(user) == 200
        assert len(recalled) == memory_settings.memory_top_k
        assert 0 < len(section) <= memory_settings.memory_max_chars
        assert section.count("\n") + 1 == memory_settings.memory_top_k


class TestRecall:
    async def test_returns_the_relevant_memory_for_a_new_question(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        await remember(memory_service, scripted, user, "User is vegetarian")

        section = await memory_service.prompt_section(user, "Any dinner ideas for tonight?")

        assert section == "- User is vegetarian"

    async def test_a_blank_message_recalls_nothing(self, memory_service: MemoryService) -> None:
        assert await memory_service.recall(uuid.uuid4(), "   ") == []


class TestDelete:
    async def test_deletes_the_owners_memory(self, memory_service: MemoryService, scripted: FakeChatModel) -> None:
        user = uuid.uuid4()
        await remember(memory_service, scripted, user, "User is vegetarian", "User lives in Busan")
        target = next(item for item in await memory_service.list(user) if item.text == "User is vegetarian")

        assert await memory_service.delete(user, target.id) is True
        assert [item.text for item in await memory_service.list(user)] == ["User lives in Busan"]

    async def test_refuses_another_users_memory(self, memory_service: MemoryService, scripted: FakeChatModel) -> None:
        owner, intruder = uuid.uuid4(), uuid.uuid4()
        await remember(memory_service, scripted, owner, "User is vegetarian")
        (target,) = await memory_service.list(owner)

        assert await memory_service.delete(intruder, target.id) is False
        assert await memory_service.list(owner) == [target]

    async def test_erase_removes_every_memory_of_that_user_only(
        self, memory_service: MemoryService, scripted: FakeChatModel, memory_db: AsyncSession
    ) -> None:
        x, y = uuid.uuid4(), uuid.uuid4()
        await remember(memory_service, scripted, x, "User is vegetarian", "User lives in Busan")
        await remember(memory_service, scripted, y, "User plays the cello")

        assert await memory_service.erase(memory_db, x) == 2
        await memory_db.commit()

        assert await memory_service.list(x) == []
        assert [item.text for item in await memory_service.list(y)] == ["User plays the cello"]

    async def test_delete_ids_removes_only_the_owners(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        owner, intruder = uuid.uuid4(), uuid.uuid4()
        added = await remember(memory_service, scripted, owner, "User is vegetarian")

        assert await memory_service.delete_ids(intruder, added) == 0
        assert await memory_service.delete_ids(owner, added) == 1
        assert await memory_service.list(owner) == []


class _StubMemory:
    """A mem0 stand-in for recall tests."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def add(self, messages: list[dict[str, str]], *, user_id: str, metadata: Any = None) -> dict[str, Any]:
        return {"results": []}

    async def search(self, query: str, *, top_k: int, filters: dict[str, Any]) -> dict[str, Any]:
        return {"results": []}


def _service(backend: _StubMemory, settings: Settings, isolation: IsolatedLoop, **overrides: Any) -> MemoryService:
    return MemoryService(backend, None, settings.model_copy(update=overrides), isolation)  # type: ignore[arg-type]


class _SlowSearch(_StubMemory):
    async def search(self, query: str, *, top_k: int, filters: dict[str, Any]) -> dict[str, Any]:
        await self.release.wait()
        return {"results": []}


class _BrokenSearch(_StubMemory):
    async def search(self, query: str, *, top_k: int, filters: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("store down")


class TestRecallNeverFailsTheTurn:
    async def test_a_slow_store_gives_no_memories_after_the_timeout(
        self, memory_settings: Settings, isolation: IsolatedLoop
    ) -> None:
        service = _service(_SlowSearch(), memory_settings, isolation, memory_search_timeout_seconds=0.05)
        timeouts, errors = metric("search", "timeout"), metric("search", "error")

        recalled = await service.recall(uuid.uuid4(), "dinner ideas?")

        assert recalled == []
        assert metric("search", "timeout") == timeouts + 1
        assert metric("search", "error") == errors

    async def test_a_failing_store_gives_no_memories(self, memory_settings: Settings, isolation: IsolatedLoop) -> None:
        service = _service(_BrokenSearch(), memory_settings, isolation)
        errors = metric("search", "error")

        recalled = await service.recall(uuid.uuid4(), "dinner ideas?")

        assert recalled == []
        assert metric("search", "error") == errors + 1


class TestThreads:
    async def test_mem0_works_on_its_own_threads(
        self, memory_service: MemoryService, scripted: FakeChatModel, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        embedder = memory_service.memory.embedding_model  # type: ignore[attr-defined]
        threads: list[str] = []
        real_embed = embedder.embed

        def embed(*args: Any, **kwargs: Any) -> Any:
            threads.append(threading.current_thread().name)
            return real_embed(*args, **kwargs)

        monkeypatch.setattr(embedder, "embed", embed)
        await remember(memory_service, scripted, uuid.uuid4(), "User is vegetarian")
        await memory_service.search(uuid.uuid4(), "dinner", 5)

        assert threads
        assert all(name.startswith("mem0") for name in threads), threads
