"""MemoryService: extraction through mem0 with the scripted model, per-user isolation, the prompt
section, deletes, and the extraction queue's accounting."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from langchain_core.messages import SystemMessage
from prometheus_client import REGISTRY

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, status_error
from agentserver.memory.extraction import extraction_prompt
from agentserver.memory.service import MemoryItem, MemoryService
from tests.memory.conftest import extraction


async def remember(memory: MemoryService, model: FakeChatModel, user_id: uuid.UUID, *facts: str) -> None:
    """Run one extraction job whose model answer is `facts` (stated by the user, so they pass the filter)."""
    model.push(extraction(*facts))
    said = "My facts: " + ". ".join(facts)
    assert memory.enqueue_extraction(user_id, uuid.uuid4(), said, "(assistant reply)")
    await memory.join()


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

        memory_service.enqueue_extraction(uuid.uuid4(), uuid.uuid4(), "I am vegetarian", "Noted, no meat.")
        await memory_service.join()

        prompt = scripted.prompts[0][-1].content
        assert prompt == "Already known:\n(nothing yet)\n\nThe user's message:\nI am vegetarian"

    async def test_a_question_is_not_sent_to_the_model(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        calls = len(scripted.calls)

        memory_service.enqueue_extraction(user, None, "What is the capital of France?", "Paris.")
        await memory_service.join()

        assert (len(scripted.calls), await memory_service.list(user)) == (calls, [])

    async def test_facts_the_user_never_stated_are_not_stored(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        scripted.push(extraction("User lives in Busan", "User is vegetarian", "User likes green tea"))

        memory_service.enqueue_extraction(user, None, "I like green tea in the morning", "Green tea is healthy.")
        await memory_service.join()

        assert [item.text for item in await memory_service.list(user)] == ["User likes green tea"]

    async def test_an_exchange_without_facts_stores_nothing(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()

        await remember(memory_service, scripted, user)

        assert await memory_service.list(user) == []

    async def test_a_model_failure_is_logged_and_counted(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        failed, errors = memory_service.failed_jobs, metric("add", "error")
        scripted.push(status_error(400))

        memory_service.enqueue_extraction(user, None, "I am vegetarian", "Noted.")
        await memory_service.join()

        assert memory_service.failed_jobs == failed + 1
        assert metric("add", "error") == errors + 1
        assert await memory_service.list(user) == []

    async def test_the_worker_survives_a_failure(self, memory_service: MemoryService, scripted: FakeChatModel) -> None:
        user = uuid.uuid4()
        scripted.push(status_error(400))
        memory_service.enqueue_extraction(user, None, "I am first", "reply")

        await remember(memory_service, scripted, user, "User likes tea")

        assert [item.text for item in await memory_service.list(user)] == ["User likes tea"]

    async def test_the_model_gets_the_compact_extraction_prompt(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        scripted.push(extraction())

        memory_service.enqueue_extraction(uuid.uuid4(), None, "I am vegetarian", "Noted.")
        await memory_service.join()

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

    async def test_delete_all_erases_only_that_user(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        x, y = uuid.uuid4(), uuid.uuid4()
        await remember(memory_service, scripted, x, "User is vegetarian", "User lives in Busan")
        await remember(memory_service, scripted, y, "User plays the cello")

        assert await memory_service.delete_all(x) == 2
        assert await memory_service.list(x) == []
        assert [item.text for item in await memory_service.list(y)] == ["User plays the cello"]

    async def test_a_job_queued_before_erasure_does_not_bring_memories_back(
        self, memory_service: MemoryService, scripted: FakeChatModel
    ) -> None:
        user = uuid.uuid4()
        gate = asyncio.Event()
        scripted.set_script([extraction("User is vegetarian")], gate=gate)  # holds the model call
        memory_service.enqueue_extraction(user, None, "I am vegetarian", "Noted.")
        memory_service.enqueue_extraction(user, None, "I live in Busan", "Noted.")
        scripted.push(extraction("User lives in Busan"))

        erase = asyncio.create_task(memory_service.delete_user(user))
        await asyncio.sleep(0.05)
        gate.set()
        await erase
        await memory_service.join()

        # The running job finished before the erasure (per-user lock); the queued one was skipped.
        assert await memory_service.list(user) == []
        assert scripted.remaining == 1


class _BlockingMemory:
    """A mem0 stand-in whose `add` waits for `release` (or fails), for queue accounting tests."""

    def __init__(self, *, fail: bool = False) -> None:
        self.release = asyncio.Event()
        self.fail = fail
        self.added: list[str] = []

    async def add(self, messages: list[dict[str, str]], *, user_id: str, metadata: Any = None) -> dict[str, Any]:
        await self.release.wait()
        if self.fail:
            raise RuntimeError("store down")
        self.added.append(messages[0]["content"])
        return {"results": []}

    async def search(self, query: str, *, top_k: int, filters: dict[str, Any]) -> dict[str, Any]:
        return {"results": []}


def _service(backend: _BlockingMemory, settings: Settings, **overrides: Any) -> MemoryService:
    service = MemoryService(backend, None, settings.model_copy(update=overrides))  # type: ignore[arg-type]
    service.start()
    return service


class _SlowSearch(_BlockingMemory):
    async def search(self, query: str, *, top_k: int, filters: dict[str, Any]) -> dict[str, Any]:
        await self.release.wait()
        return {"results": []}


class _BrokenSearch(_BlockingMemory):
    async def search(self, query: str, *, top_k: int, filters: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("store down")


class TestRecallNeverFailsTheTurn:
    async def test_a_slow_store_gives_no_memories_after_the_timeout(self, memory_settings: Settings) -> None:
        service = _service(_SlowSearch(), memory_settings, memory_search_timeout_seconds=0.05)
        timeouts, errors = metric("search", "timeout"), metric("search", "error")

        recalled = await service.recall(uuid.uuid4(), "dinner ideas?")

        assert recalled == []
        assert metric("search", "timeout") == timeouts + 1
        assert metric("search", "error") == errors
        await service.close()

    async def test_a_failing_store_gives_no_memories(self, memory_settings: Settings) -> None:
        service = _service(_BrokenSearch(), memory_settings)
        errors = metric("search", "error")

        recalled = await service.recall(uuid.uuid4(), "dinner ideas?")

        assert recalled == []
        assert metric("search", "error") == errors + 1
        await service.close()


class TestQueue:
    async def test_shutdown_drains_queued_jobs(self, memory_settings: Settings) -> None:
        backend = _BlockingMemory()
        service = _service(backend, memory_settings, memory_workers=1)
        for n in range(3):
            service.enqueue_extraction(uuid.uuid4(), None, f"message {n}", "reply")

        backend.release.set()
        await service.close()

        assert backend.added == ["message 0", "message 1", "message 2"]
        assert service.dropped_jobs == 0

    async def test_shutdown_counts_what_it_could_not_drain(self, memory_settings: Settings) -> None:
        backend = _BlockingMemory()  # never released: the drain times out
        service = _service(backend, memory_settings, memory_workers=1, memory_drain_timeout_seconds=0.1)
        dropped = metric("add", "dropped")
        for n in range(3):
            service.enqueue_extraction(uuid.uuid4(), None, f"message {n}", "reply")
        await asyncio.sleep(0)

        await service.close()

        assert service.dropped_jobs == 3
        assert metric("add", "dropped") == dropped + 3
        assert service.queue_depth == 0

    async def test_a_full_queue_refuses_and_counts(self, memory_settings: Settings) -> None:
        backend = _BlockingMemory()
        service = _service(backend, memory_settings, memory_workers=1, memory_queue_size=1)
        service.enqueue_extraction(uuid.uuid4(), None, "taken by the worker", "reply")
        await asyncio.sleep(0)
        service.enqueue_extraction(uuid.uuid4(), None, "fills the queue", "reply")

        accepted = service.enqueue_extraction(uuid.uuid4(), None, "one too many", "reply")

        assert accepted is False
        assert service.dropped_jobs == 1
        backend.release.set()
        await service.close()
        assert backend.added == ["taken by the worker", "fills the queue"]

    async def test_failures_are_counted_and_the_queue_keeps_going(self, memory_settings: Settings) -> None:
        backend = _BlockingMemory(fail=True)
        service = _service(backend, memory_settings, memory_workers=2)
        for n in range(4):
            service.enqueue_extraction(uuid.uuid4(), None, f"message {n}", "reply")

        backend.release.set()
        await service.join()
        await service.close()

        assert service.failed_jobs == 4
        assert service.dropped_jobs == 0

    async def test_nothing_is_accepted_after_shutdown(self, memory_settings: Settings) -> None:
        service = _service(_BlockingMemory(), memory_settings)
        await service.close()

        assert service.enqueue_extraction(uuid.uuid4(), None, "late", "reply") is False
        assert service.dropped_jobs == 1


@pytest.fixture(autouse=True)
def _no_leftover_jobs(memory_service: MemoryService) -> None:
    assert memory_service.queue_depth == 0
