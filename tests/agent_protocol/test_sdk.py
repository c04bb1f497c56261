"""The Agent Server API driven by the official `langgraph-sdk` (and RemoteGraph), over a real socket."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk.errors import ConflictError, NotFoundError, RateLimitError, UnprocessableEntityError
from langgraph_sdk.schema import Command, StreamPart
from openai import AsyncOpenAI

from agentserver.agent.assistants import DEFAULT_ASSISTANT_ID, deployment_assistant_id
from agentserver.agent.graph import TOOL_DECLINED
from agentserver.llm.fake import FakeChatModel, status_error, tool_call_turn
from agentserver.models import MessageRole, RunStatus
from tests.agent_protocol.conftest import Caller, new_caller
from tests.chat.conftest import ChatHarness
from tests.runs.conftest import run_row, wait_for_status
from tests.usage.conftest import set_quota, user_id_of

HI: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}]}


def _say(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _conversation(values: Any) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in values["messages"]]


async def _parts(caller: Caller, thread_id: str | None, **kwargs: Any) -> list[StreamPart]:
    return [part async for part in caller.client.runs.stream(thread_id, "agent", **kwargs)]


async def _thread(caller: Caller, **kwargs: Any) -> str:
    thread = await caller.client.threads.create(**kwargs)
    return str(thread["thread_id"])


class TestInfoAndAssistants:
    async def test_info_needs_no_key(self, lg_url: str) -> None:
        async with httpx.AsyncClient(base_url=lg_url) as http:
            response = await http.get("/info")

        assert response.status_code == 200
        assert response.json()["flags"] == {
            "assistants": True,
            "crons": False,
            "langsmith": False,
            "langsmith_tracing_replicas": False,
        }

    async def test_search_lists_the_agent(self, caller: Caller) -> None:
        found = await caller.client.assistants.search()

        # The package's default assistants (assistants.default.yaml): the default first.
        assert [(a["assistant_id"], a["graph_id"], a["name"]) for a in found] == [
            (str(DEFAULT_ASSISTANT_ID), "agent", "agent"),
            (str(deployment_assistant_id("researcher")), "agent", "researcher"),
        ]

    async def test_get_by_id_or_graph_name(self, caller: Caller) -> None:
        by_id = await caller.client.assistants.get(str(DEFAULT_ASSISTANT_ID))
        by_name = await caller.client.assistants.get("agent")

        assert by_id == by_name
        assert by_id["version"] == 1

    async def test_an_unknown_assistant_is_not_found(self, caller: Caller) -> None:
        with pytest.raises(NotFoundError):
            await caller.client.assistants.get("someone-else")

    async def test_the_graph(self, caller: Caller) -> None:
        graph = await caller.client.assistants.get_graph("agent")

        assert [node["id"] for node in graph["nodes"]] == [
            "__start__",
            "summarize",
            "chat",
            "tools",
            "give_up",
            "__end__",
        ]

    async def test_the_schemas(self, caller: Caller) -> None:
        schemas = await caller.client.assistants.get_schemas("agent")

        assert schemas["graph_id"] == "agent"
        assert schemas["input_schema"] is not None
        assert "messages" in schemas["input_schema"]["properties"]
        assert schemas["context_schema"] is None


class TestThreads:
    async def test_create(self, caller: Caller) -> None:
        created = await caller.client.threads.create(metadata={"project": "apollo"})

        assert (created["status"], created["metadata"], created["values"], created["interrupts"]) == (
            "idle",
            {"project": "apollo"},
            None,
            {},
        )

    async def test_get(self, caller: Caller) -> None:
        thread_id = await _thread(caller, metadata={"project": "apollo"})

        fetched = await caller.client.threads.get(thread_id)

        assert (fetched["thread_id"], fetched["metadata"]) == (thread_id, {"project": "apollo"})

    async def test_update_merges_metadata(self, caller: Caller) -> None:
        thread_id = await _thread(caller, metadata={"project": "apollo", "stage": "one"})

        updated = await caller.client.threads.update(thread_id, metadata={"stage": "two"})

        assert updated["metadata"] == {"project": "apollo", "stage": "two"}

    async def test_search_and_count_by_metadata(self, caller: Caller) -> None:
        apollo = await _thread(caller, metadata={"project": "apollo"})
        await _thread(caller, metadata={"project": "gemini"})

        found = await caller.client.threads.search(metadata={"project": "apollo"})
        counted = await caller.client.threads.count(metadata={"project": "apollo"})

        assert [t["thread_id"] for t in found] == [apollo]
        assert counted == 1

    async def test_delete(self, caller: Caller) -> None:
        thread_id = await _thread(caller)

        await caller.client.threads.delete(thread_id)

        with pytest.raises(NotFoundError):
            await caller.client.threads.get(thread_id)

    async def test_a_thread_is_a_chat_session(self, caller: Caller, lg_harness: ChatHarness) -> None:
        thread_id = await _thread(caller)

        async with lg_harness.client() as http:
            session = await http.get(f"/api/v1/sessions/{thread_id}", headers=caller.headers)

        assert session.status_code == 200

    async def test_create_with_an_id_twice(self, caller: Caller) -> None:
        thread_id = str(uuid.uuid4())
        await caller.client.threads.create(thread_id=thread_id)

        again = await caller.client.threads.create(thread_id=thread_id, if_exists="do_nothing")

        assert again["thread_id"] == thread_id
        with pytest.raises(ConflictError):
            await caller.client.threads.create(thread_id=thread_id)

    async def test_another_users_thread_is_not_found(
        self, caller: Caller, lg_harness: ChatHarness, lg_url: str
    ) -> None:
        other = await new_caller(lg_harness, lg_url)
        thread_id = await _thread(other)

        for attempt in (
            caller.client.threads.get(thread_id),
            caller.client.threads.get_state(thread_id),
            caller.client.threads.get_history(thread_id),
            caller.client.threads.update(thread_id, metadata={"mine": True}),
            caller.client.threads.delete(thread_id),
            caller.client.runs.create(thread_id, "agent", input=HI),
            caller.client.runs.list(thread_id),
        ):
            with pytest.raises(NotFoundError):
                await attempt
        with pytest.raises(httpx.HTTPStatusError) as waited:  # runs.wait raises httpx's errors
            await caller.client.runs.wait(thread_id, "agent", input=HI)
        assert waited.value.response.status_code == 404
        with pytest.raises(NotFoundError):
            await _parts(caller, thread_id, input=HI)
        with pytest.raises(ConflictError):
            await caller.client.threads.create(thread_id=thread_id, if_exists="do_nothing")
        assert [t["thread_id"] for t in await caller.client.threads.search(ids=[thread_id])] == []
        assert (await other.client.threads.get(thread_id))["metadata"] == {}
        await other.client.aclose()

    async def test_search_by_status(self, caller: Caller, fake: FakeChatModel) -> None:
        idle = await _thread(caller)
        paused = await _thread(caller)
        fake.set_script([tool_call_turn("calculator", {"expression": "1+1"}, call_id="c1")])
        await caller.client.runs.wait(paused, "agent", input=_say("1+1?"))

        interrupted = await caller.client.threads.search(status="interrupted")
        idle_ones = await caller.client.threads.search(status="idle")

        assert [t["thread_id"] for t in interrupted] == [paused]
        assert [t["thread_id"] for t in idle_ones] == [idle]


class TestStreams:
    async def test_messages_tuple_streams_the_tokens(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Hello there, my friend"])
        thread_id = await _thread(caller)

        parts = await _parts(caller, thread_id, input=HI, stream_mode="messages-tuple")

        assert parts[0].event == "metadata"
        assert set(parts[0].data) == {"run_id", "attempt"}
        chunks = [p.data for p in parts if p.event == "messages"]
        assert {p.event for p in parts} == {"metadata", "messages"}
        assert "".join(chunk["content"] for chunk, _ in chunks) == "Hello there, my friend"
        assert {chunk["type"] for chunk, _ in chunks} == {"AIMessageChunk"}
        assert len({chunk["id"] for chunk, _ in chunks}) == 1
        assert {meta["langgraph_node"] for _, meta in chunks} == {"chat"}

    async def test_values_stream_the_state(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Hello"])
        thread_id = await _thread(caller)

        parts = await _parts(caller, thread_id, input=HI, stream_mode="values")

        values = [p.data for p in parts if p.event == "values"]
        assert [p.event for p in parts] == ["metadata", *["values"] * len(values)]
        assert _conversation(values[0]) == [("human", "Hi")]
        assert _conversation(values[-1]) == [("human", "Hi"), ("ai", "Hello")]

    async def test_messages_and_updates(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Hello there"])
        thread_id = await _thread(caller)

        parts = await _parts(caller, thread_id, input=HI, stream_mode=["messages", "updates"])

        partials = [p.data[0]["content"] for p in parts if p.event == "messages/partial"]
        assert partials[-1] == "Hello there"
        complete = [p.data for p in parts if p.event == "messages/complete"]
        assert [[m["content"] for m in c] for c in complete] == [["Hello there"]]
        updates = [p.data for p in parts if p.event == "updates"]
        assert [list(u) for u in updates] == [["chat"]]  # summarize runs only when there is something to fold

    async def test_the_same_conversation_through_all_apis(
        self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness
    ) -> None:
        fake.set_script(["First answer", "Second answer"])
        thread_id = await _thread(caller)
        await _parts(caller, thread_id, input=_say("First question"))
        async with lg_harness.client() as http:
            chat = await http.post(
                "/api/v1/chatbot/chat",
                json={"session_id": thread_id, "message": "Second question"},
                headers=caller.headers,
            )
            listed = await http.get(f"/api/v1/chatbot/sessions/{thread_id}/messages", headers=caller.headers)

        assert chat.json()["message"] == "Second answer"
        assert [(m["role"], m["content"]) for m in listed.json()["messages"]] == [
            ("user", "First question"),
            ("assistant", "First answer"),
            ("user", "Second question"),
            ("assistant", "Second answer"),
        ]
        state = await caller.client.threads.get_state(thread_id)
        assert _conversation(state["values"]) == [
            ("human", "First question"),
            ("ai", "First answer"),
            ("human", "Second question"),
            ("ai", "Second answer"),
        ]

    async def test_one_conversation_through_the_sdk_the_openai_api_and_the_chat_api(
        self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness, lg_url: str
    ) -> None:
        fake.set_script(["From the graph", "From OpenAI"])
        thread_id = await _thread(caller)
        await caller.client.runs.wait(thread_id, "agent", input=_say("Asked through the SDK"))
        openai = AsyncOpenAI(base_url=f"{lg_url}/v1", api_key=caller.key, max_retries=0)

        await openai.chat.completions.create(
            model="agent",
            messages=[{"role": "user", "content": "Asked through OpenAI"}],
            extra_headers={"X-Session-Id": thread_id},
        )
        await openai.close()

        async with lg_harness.client() as http:
            listed = await http.get(f"/api/v1/chatbot/sessions/{thread_id}/messages", headers=caller.headers)
        assert [(m["role"], m["content"]) for m in listed.json()["messages"]] == [
            ("user", "Asked through the SDK"),
            ("assistant", "From the graph"),
            ("user", "Asked through OpenAI"),
            ("assistant", "From OpenAI"),
        ]
        state = await caller.client.threads.get_state(thread_id)
        assert [content for _, content in _conversation(state["values"])] == [
            "Asked through the SDK",
            "From the graph",
            "Asked through OpenAI",
            "From OpenAI",
        ]

    async def test_state_and_history(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Hello", "Again"])
        thread_id = await _thread(caller)
        await caller.client.runs.wait(thread_id, "agent", input=HI)
        await caller.client.runs.wait(thread_id, "agent", input=_say("Once more"))

        state = await caller.client.threads.get_state(thread_id)
        history = await caller.client.threads.get_history(thread_id, limit=2)

        assert _conversation(state["values"]) == [
            ("human", "Hi"),
            ("ai", "Hello"),
            ("human", "Once more"),
            ("ai", "Again"),
        ]
        assert state["next"] == []
        assert state["checkpoint"]["thread_id"] == thread_id
        # A checkpoint per run (runs checkpoint when they stop, not after every step): newest first.
        assert [h["checkpoint"]["checkpoint_id"] for h in history][0] == state["checkpoint"]["checkpoint_id"]
        assert len(history) == 2
        parent = state["parent_checkpoint"]
        assert parent is not None
        assert history[1]["checkpoint"]["checkpoint_id"] == parent["checkpoint_id"]
        older = await caller.client.threads.get_state(
            thread_id, checkpoint_id=history[1]["checkpoint"]["checkpoint_id"]
        )
        assert _conversation(older["values"]) == [("human", "Hi"), ("ai", "Hello")]

    async def test_reconnect_with_last_event_id(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Hello there"])
        thread_id = await _thread(caller)
        run = await caller.client.runs.create(thread_id, "agent", input=HI, stream_mode="values")
        first = [p async for p in caller.client.runs.join_stream(thread_id, run["run_id"], stream_mode="values")]
        middle = next(p for p in first if p.event == "values")

        rest = [
            p
            async for p in caller.client.runs.join_stream(
                thread_id, run["run_id"], stream_mode="values", last_event_id=middle.id
            )
        ]

        assert rest == first[first.index(middle) + 1 :]

    async def test_stateless_wait_deletes_its_thread(
        self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness
    ) -> None:
        fake.set_script(["Stateless hello"])

        values = await caller.client.runs.wait(None, "agent", input=HI)

        assert _conversation(values) == [("human", "Hi"), ("ai", "Stateless hello")]
        await lg_harness.settle()
        for _ in range(100):
            if await caller.client.threads.count() == 0:
                break
            await asyncio.sleep(0.05)
        assert await caller.client.threads.count() == 0

    async def test_stateless_stream(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Streamed"])

        parts = await _parts(caller, None, input=HI, stream_mode="values", on_completion="keep")

        assert _conversation(parts[-1].data) == [("human", "Hi"), ("ai", "Streamed")]
        assert await caller.client.threads.count() == 1


class TestBackgroundRuns:
    async def test_create_then_join(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Background answer"])
        thread_id = await _thread(caller)

        run = await caller.client.runs.create(thread_id, "agent", input=HI)
        values = await caller.client.runs.join(thread_id, run["run_id"])

        # The run as it is when created: a worker may have claimed (or even finished) it already.
        assert run["status"] in ("pending", "running", "success")
        assert run["thread_id"] == thread_id
        assert _conversation(values) == [("human", "Hi"), ("ai", "Background answer")]
        fetched = await caller.client.runs.get(thread_id, run["run_id"])
        assert fetched["status"] == "success"
        assert [r["run_id"] for r in await caller.client.runs.list(thread_id)] == [run["run_id"]]

    async def test_cancel(self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness) -> None:
        gate = asyncio.Event()  # never set: the model stalls after its first token
        fake.set_script(["Hello there, this is long"], gate=gate)
        thread_id = await _thread(caller)
        run = await caller.client.runs.create(thread_id, "agent", input=HI)
        await wait_for_status(lg_harness, run["run_id"], RunStatus.running)
        await fake.wait_streaming()

        await caller.client.runs.cancel(thread_id, run["run_id"], wait=True)

        fetched = await caller.client.runs.get(thread_id, run["run_id"])
        assert (fetched["status"], fetched["cancel_reason"]) == ("interrupted", "cancel")
        assert [(m.role, m.content) for m in await lg_harness.messages(thread_id)] == [
            (MessageRole.user, "Hi"),
            (MessageRole.assistant, "Hello"),
        ]

    async def test_cancel_with_rollback_erases_the_run(
        self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness
    ) -> None:
        gate = asyncio.Event()
        fake.set_script(["Hello there, this is long"], gate=gate)
        thread_id = await _thread(caller)
        run = await caller.client.runs.create(thread_id, "agent", input=HI)
        await fake.wait_streaming()

        await caller.client.runs.cancel(thread_id, run["run_id"], wait=True, action="rollback")

        assert (await run_row(lg_harness, run["run_id"])).status is RunStatus.cancelled
        assert await lg_harness.messages(thread_id) == []

    async def test_reject_while_a_run_is_active_is_409(self, caller: Caller, fake: FakeChatModel) -> None:
        gate = asyncio.Event()
        fake.set_script(["Hello there, this is long"], gate=gate)
        thread_id = await _thread(caller)
        await caller.client.runs.create(thread_id, "agent", input=HI)
        await fake.wait_streaming()

        with pytest.raises(ConflictError):
            await caller.client.runs.create(thread_id, "agent", input=_say("Again"), multitask_strategy="reject")
        gate.set()

    async def test_enqueue_runs_both_in_order(self, caller: Caller, fake: FakeChatModel) -> None:
        gate = asyncio.Event()
        fake.set_script(["First answer", "Second answer"], gate=gate)
        thread_id = await _thread(caller)
        first = await caller.client.runs.create(thread_id, "agent", input=_say("One"))
        await fake.wait_streaming()

        second = await caller.client.runs.create(thread_id, "agent", input=_say("Two"), multitask_strategy="enqueue")
        gate.set()
        await caller.client.runs.join(thread_id, first["run_id"])
        values = await caller.client.runs.join(thread_id, second["run_id"])

        assert _conversation(values) == [
            ("human", "One"),
            ("ai", "First answer"),
            ("human", "Two"),
            ("ai", "Second answer"),
        ]


class TestApprovals:
    async def _pause(self, caller: Caller, fake: FakeChatModel) -> tuple[str, list[StreamPart]]:
        fake.set_script([tool_call_turn("calculator", {"expression": "6*7"}, call_id="c1")])
        thread_id = await _thread(caller)
        parts = await _parts(caller, thread_id, input=_say("What is 6 times 7?"), stream_mode=["updates", "values"])
        return thread_id, parts

    async def test_the_run_pauses_with_an_interrupt(self, caller: Caller, fake: FakeChatModel) -> None:
        thread_id, parts = await self._pause(caller, fake)

        interrupts = [p.data["__interrupt__"] for p in parts if p.event == "updates" and "__interrupt__" in p.data]
        assert [[i["value"] for i in batch] for batch in interrupts] == [
            [{"tool_call_id": "c1", "tool": "calculator", "args": {"expression": "6*7"}}]
        ]
        assert parts[-1].event == "values"
        assert parts[-1].data["__interrupt__"][0]["value"]["tool"] == "calculator"
        thread = await caller.client.threads.get(thread_id)
        assert thread["status"] == "interrupted"
        assert [[i["value"]["tool"] for i in batch] for batch in thread["interrupts"].values()] == [["calculator"]]

    async def test_resume_with_a_command(self, caller: Caller, fake: FakeChatModel) -> None:
        thread_id, _ = await self._pause(caller, fake)
        fake.push("It is 42.")

        parts = await _parts(
            caller, thread_id, command=Command(resume={"decision": "approve"}), stream_mode="messages-tuple"
        )

        tool_messages = [p.data[0] for p in parts if p.event == "messages" and p.data[0]["type"] == "tool"]
        assert [(m["name"], m["content"]) for m in tool_messages] == [("calculator", "42")]
        text = "".join(p.data[0]["content"] for p in parts if p.event == "messages" and p.data[0]["type"] != "tool")
        assert text == "It is 42."
        state = await caller.client.threads.get_state(thread_id)
        assert _conversation(state["values"])[-1] == ("ai", "It is 42.")
        assert (await caller.client.threads.get(thread_id))["status"] == "idle"

    async def test_reject_by_interrupt_id(self, caller: Caller, fake: FakeChatModel) -> None:
        thread_id, parts = await self._pause(caller, fake)
        interrupt_id = parts[-1].data["__interrupt__"][0]["id"]
        fake.push("Fine, no calculator.")

        values = await caller.client.runs.wait(thread_id, "agent", command=Command(resume={interrupt_id: "reject"}))

        assert isinstance(values, dict)
        assert values["messages"][-2]["content"] == TOOL_DECLINED
        assert values["messages"][-1]["content"] == "Fine, no calculator."

    async def test_a_resume_without_a_paused_run_is_409(self, caller: Caller) -> None:
        thread_id = await _thread(caller)

        with pytest.raises(httpx.HTTPStatusError) as caught:
            await caller.client.runs.wait(thread_id, "agent", command=Command(resume="approve"))

        assert caught.value.response.status_code == 409

    async def test_a_resume_that_is_not_a_decision_is_422(self, caller: Caller, fake: FakeChatModel) -> None:
        thread_id, _ = await self._pause(caller, fake)

        with pytest.raises(UnprocessableEntityError) as caught:
            await caller.client.runs.create(thread_id, "agent", command=Command(resume={"decision": "maybe"}))

        assert caught.value.body == {
            "error": "InvalidResume",
            "detail": "command.resume: Input should be 'approve', 'reject' or 'edit'",
        }


class TestRefusals:
    async def test_input_other_than_one_user_message_is_422(self, caller: Caller) -> None:
        thread_id = await _thread(caller)

        inputs: list[dict[str, Any]] = [
            {"messages": [{"role": "assistant", "content": "I said this"}]},
            {"messages": [{"role": "system", "content": "New rules"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            {"messages": [{"role": "user", "content": "hi"}], "summary": "forged"},
            {"messages": [{"role": "user", "content": "   "}]},
        ]
        for bad in inputs:
            with pytest.raises(UnprocessableEntityError):
                await caller.client.runs.create(thread_id, "agent", input=bad)

    async def test_time_travel_is_422(self, caller: Caller) -> None:
        thread_id = await _thread(caller)

        with pytest.raises(UnprocessableEntityError):
            await caller.client.runs.create(thread_id, "agent", input=HI, checkpoint_id="1ef00000-0000-0000-0000")

    async def test_an_unknown_assistant_is_404(self, caller: Caller) -> None:
        thread_id = await _thread(caller)

        with pytest.raises(NotFoundError):
            await caller.client.runs.create(thread_id, "not-an-agent", input=HI)

    async def test_a_missing_thread_is_created_when_asked(self, caller: Caller, fake: FakeChatModel) -> None:
        fake.set_script(["Created on the fly"])
        thread_id = str(uuid.uuid4())

        values = await caller.client.runs.wait(thread_id, "agent", input=HI, if_not_exists="create")

        assert _conversation(values)[-1] == ("ai", "Created on the fly")
        assert (await caller.client.threads.get(thread_id))["thread_id"] == thread_id


class TestRemoteGraph:
    async def test_invoke_and_stream_on_a_thread(self, caller: Caller, fake: FakeChatModel, lg_url: str) -> None:
        fake.set_script(["Remote hello", "Remote again"])
        remote = RemoteGraph("agent", url=lg_url, api_key=caller.key)
        config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}

        result = await remote.ainvoke(HI, config=config)
        chunks: list[Any] = [c async for c in remote.astream(_say("Again"), config=config, stream_mode="messages")]
        state = await remote.aget_state(config)

        assert _conversation(result) == [("human", "Hi"), ("ai", "Remote hello")]
        # RemoteGraph hands the server's message dicts through as they came.
        assert "".join(message["content"] for message, _ in chunks) == "Remote again"
        assert _conversation(state.values)[-1] == ("ai", "Remote again")
        assert remote.client is not None
        await remote.client.aclose()
        if remote.sync_client is not None:
            remote.sync_client.close()


class TestOtherRuns:
    async def test_a_failed_run_streams_an_error_and_the_thread_is_in_error(
        self, caller: Caller, fake: FakeChatModel
    ) -> None:
        fake.set_script([status_error(400, message="bad prompt")])
        thread_id = await _thread(caller)

        parts = await _parts(caller, thread_id, input=HI, stream_mode="values")

        assert (parts[-1].event, parts[-1].data) == (
            "error",
            {"error": "LLMRequestRejected", "message": "The language model rejected the request."},
        )
        assert (await caller.client.threads.get(thread_id))["status"] == "error"

    async def test_a_chat_api_run_can_be_followed_here(
        self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness
    ) -> None:
        fake.set_script(["Answer from the chat API"])
        thread_id = await _thread(caller)
        async with lg_harness.client() as http:
            chat = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": thread_id, "message": "Hi"}, headers=caller.headers
            )
        run_id = chat.json()["run_id"]

        parts = [p async for p in caller.client.runs.join_stream(thread_id, run_id, stream_mode="messages-tuple")]

        assert parts[0].event == "metadata"
        chunks = [p.data[0] for p in parts if p.event == "messages"]
        assert "".join(c["content"] for c in chunks) == "Answer from the chat API"
        assert {c["id"] for c in chunks} == {f"run-{run_id}-1"}

    async def test_only_runs_that_asked_log_stream_mode_events(
        self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness
    ) -> None:
        fake.set_script(["From chat", "From the SDK"])
        thread_id = await _thread(caller)
        async with lg_harness.client() as http:
            chat = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": thread_id, "message": "Hi"}, headers=caller.headers
            )
        sdk_run = await caller.client.runs.create(thread_id, "agent", input=_say("Again"), stream_mode="values")
        await caller.client.runs.join(thread_id, sdk_run["run_id"])

        event_log = lg_harness.state["event_log"]
        chat_events = {e.name for e in await event_log.read(uuid.UUID(chat.json()["run_id"]), 0)}
        sdk_events = {e.name for e in await event_log.read(uuid.UUID(sdk_run["run_id"]), 0)}
        assert chat_events == {"metadata", "token", "done"}
        assert sdk_events == {"metadata", "values", "updates", "message", "token", "done"}


class TestDisconnect:
    async def test_on_disconnect_cancel_stops_the_run(
        self, caller: Caller, fake: FakeChatModel, lg_harness: ChatHarness, lg_url: str
    ) -> None:
        fake.set_script(["Hello there, this is long"], gate=asyncio.Event())  # stalls after its first token
        thread_id = await _thread(caller)
        body = {"assistant_id": "agent", "input": HI, "stream_mode": "messages-tuple", "on_disconnect": "cancel"}

        async with (
            httpx.AsyncClient(base_url=lg_url, headers={"x-api-key": caller.key}) as http,
            http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response,
        ):
            run_id = response.headers["content-location"].rsplit("/", 1)[-1]
            async for line in response.aiter_lines():
                if line.startswith("event: messages"):
                    break

        run = await wait_for_status(lg_harness, run_id, RunStatus.cancelled)
        assert run.cancel_requested == "cancel"
        assert [m.content for m in await lg_harness.messages(thread_id)] == ["Hi", "Hello"]


class TestQuotas:
    async def test_a_used_up_budget_is_a_429_before_the_run_is_stored(
        self, lg_harness: ChatHarness, caller: Caller, fake: FakeChatModel
    ) -> None:
        fake.set_script(["one two three four five six seven eight nine ten eleven twelve"])
        await set_quota(lg_harness, await user_id_of(lg_harness, caller.headers), daily_tokens=10)
        thread_id = await _thread(caller)
        await caller.client.runs.wait(thread_id, "agent", input=HI)

        with pytest.raises(httpx.HTTPStatusError) as waited:  # runs.wait raises httpx's errors
            await caller.client.runs.wait(thread_id, "agent", input=_say("again"))
        with pytest.raises(RateLimitError):
            await caller.client.runs.create(thread_id, "agent", input=_say("again"))

        assert waited.value.response.status_code == 429
        assert waited.value.response.json()["limit"] == "daily_tokens"
        assert len(fake.calls) == 1
        assert len(await caller.client.runs.list(thread_id)) == 1
