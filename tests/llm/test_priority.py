"""ModelGate: background model calls wait for chat, and a chat call preempts a running background call."""

from __future__ import annotations

import asyncio

import pytest

from agentserver.llm.priority import ModelGate


class TestBackground:
    async def test_runs_at_once_when_no_chat_is_active(self) -> None:
        gate = ModelGate()

        async def call() -> str:
            return "done"

        assert await gate.background(call) == "done"

    async def test_waits_while_a_chat_call_is_active(self) -> None:
        gate = ModelGate()
        order: list[str] = []
        release = asyncio.Event()

        async def chat() -> None:
            async with gate.foreground():
                order.append("chat started")
                await release.wait()
                order.append("chat finished")

        async def extraction() -> str:
            order.append("extraction ran")
            return "ok"

        chat_task = asyncio.create_task(chat())
        await asyncio.sleep(0)
        background = asyncio.create_task(gate.background(extraction))
        await asyncio.sleep(0.01)
        release.set()
        await chat_task

        assert await background == "ok"
        assert order == ["chat started", "chat finished", "extraction ran"]

    async def test_a_chat_call_preempts_it_and_it_starts_again_afterwards(self) -> None:
        gate = ModelGate()
        starts: list[int] = []
        started = asyncio.Event()

        async def extraction() -> str:
            starts.append(len(starts) + 1)
            started.set()
            await asyncio.sleep(0.05 if len(starts) > 1 else 3600)
            return f"finished on start {len(starts)}"

        background = asyncio.create_task(gate.background(extraction))
        await started.wait()
        async with gate.foreground():
            await asyncio.sleep(0.01)
            assert starts == [1]  # preempted, and not restarted while the chat call runs

        assert await background == "finished on start 2"

    async def test_cancelling_the_caller_cancels_it_for_good(self) -> None:
        gate = ModelGate()
        started = asyncio.Event()

        async def extraction() -> None:
            started.set()
            await asyncio.sleep(3600)

        background = asyncio.create_task(gate.background(extraction))
        await started.wait()
        background.cancel()

        with pytest.raises(asyncio.CancelledError):
            await background
        assert not gate.busy


class TestForeground:
    async def test_chat_calls_do_not_wait_for_each_other(self) -> None:
        gate = ModelGate()
        inside = 0
        most = 0

        async def chat() -> None:
            nonlocal inside, most
            async with gate.foreground():
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(chat(), chat())

        assert most == 2
