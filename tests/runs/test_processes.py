"""Runs across processes: workers apart from the API, a worker killed mid-run, two API processes and two
workers sharing one PostgreSQL and Redis, an erasure on one process while another extracts memories.

The model is a local OpenAI-compatible stub (tests/llm/stub_openai.py) every process reaches over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from agentserver.config import Settings
from agentserver.kit.db import session_scope
from agentserver.memory.extraction import EXTRACTION_PROMPT
from agentserver.models import Message, MessageRole, Run, RunStatus
from tests.chat.conftest import ChatHarness, parse_sse, start_harness
from tests.factories import auth_headers_for, create_user
from tests.harness import drain_jobs
from tests.llm.stub_openai import Reply, StubOpenAI
from tests.processes import AgentserverProcess, environment, free_port
from tests.ratelimit.apps import REDIS_TEST_URL

pytestmark = pytest.mark.redis

EXTRACTION_MARK = EXTRACTION_PROMPT.split(".", 1)[0]  # how the stub tells extraction from chat


@pytest.fixture(scope="module")
async def stub() -> AsyncIterator[StubOpenAI]:
    server = StubOpenAI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def stub_reset(stub: StubOpenAI) -> Iterator[StubOpenAI]:
    stub.reset()
    yield stub
    stub.reset()


def llm_settings(stub: StubOpenAI, prefix: str) -> dict[str, Any]:
    return {
        "llm_provider": "openai_compatible",
        "llm_base_url": stub.url,
        "default_model": "stub-model",
        "redis_url": REDIS_TEST_URL,
        "redis_key_prefix": prefix,
    }


def env_for(settings: Settings, stub: StubOpenAI, **extra: Any) -> dict[str, str]:
    return environment(
        settings,
        LLM_PROVIDER="openai_compatible",
        LLM_BASE_URL=stub.url,
        DEFAULT_MODEL="stub-model",
        REDIS_URL=settings.redis_url,
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        MEMORY_ENABLED=str(settings.memory_enabled).lower(),
        **extra,
    )


async def start_workers(env: dict[str, str], count: int) -> list[AgentserverProcess]:
    workers = [AgentserverProcess.start(["worker"], env) for _ in range(count)]
    await asyncio.gather(*(worker.wait_for_log("worker.ready") for worker in workers))
    return workers


class TestWorkerKilledMidRun:
    async def test_another_worker_takes_the_run_over_and_it_answers_once(
        self,
        own_database_settings: Callable[..., Awaitable[Settings]],
        stub_reset: StubOpenAI,
    ) -> None:
        settings = await own_database_settings(
            "agentserver_takeover",
            **llm_settings(stub_reset, f"agentserver-test-{uuid.uuid4().hex[:12]}"),
            run_worker_enabled=False,  # this test's app is API only: the runs go to the worker processes
        )
        stub_reset.responder = lambda body: Reply(text=" ".join(f"w{n}" for n in range(25)), token_delay=0.2)
        workers = await start_workers(env_for(settings, stub_reset), 2)
        api, lifespan = await start_harness(settings)
        try:
            headers = await api.new_user()
            session_id = await api.new_session(headers)
            streaming = asyncio.create_task(stream(api, headers, session_id, "count to 25"))
            run = await wait_until(api, lambda r: r.status is RunStatus.running and r.worker_id is not None)
            await asyncio.sleep(1.0)  # some tokens are out
            victim = next(w for w in workers if f":{w.pid}:" in str(run.worker_id))
            victim.kill()

            events = parse_sse((await asyncio.wait_for(streaming, 60)).text)
            final = await wait_until(api, lambda r: r.status is RunStatus.success)
            messages = await api.messages(session_id)
            follow_up = await chat(api, headers, session_id, "and again?")
        finally:
            await lifespan.__aexit__(None, None, None)
            for worker in workers:
                worker.stop()

        answer = " ".join(f"w{n}" for n in range(25))
        assert final.attempt == 2
        assert final.worker_id is None or f":{victim.pid}:" not in final.worker_id
        names = [name for name, _ in events]
        assert names[-1] == "done"
        assert "reset" in names  # what the dead worker streamed is void
        after_reset = names.index("reset")
        assert "".join(d["content"] for n, d in events[after_reset:] if n == "token") == answer
        assert [(m.role, m.content) for m in messages] == [
            (MessageRole.user, "count to 25"),
            (MessageRole.assistant, answer),
        ]
        assert follow_up.status_code == 200


@pytest.fixture(scope="module")
async def cluster(
    own_database_settings: Callable[..., Awaitable[Settings]], stub: StubOpenAI
) -> AsyncIterator[tuple[Settings, list[str]]]:
    """Two API processes (no worker) and two worker processes on one database and Redis, memory on."""
    settings = await own_database_settings(
        "agentserver_cluster",
        **llm_settings(stub, f"agentserver-test-{uuid.uuid4().hex[:12]}"),
        memory_enabled=True,
        run_worker_enabled=False,
    )
    env = env_for(settings, stub, JOB_CONCURRENCY="4")
    ports = [free_port(), free_port()]
    apis = [AgentserverProcess.start(["serve", "--no-run-worker", "--port", str(port)], env) for port in ports]
    workers = [AgentserverProcess.start(["worker"], env) for _ in range(2)]
    processes = apis + workers
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        await asyncio.gather(
            *(api.wait_until_healthy(url) for api, url in zip(apis, urls, strict=True)),
            *(worker.wait_for_log("worker.ready") for worker in workers),
        )
        yield settings, urls
    finally:
        for process in processes:
            process.stop()


def answer_or_extraction(body: dict[str, Any]) -> Reply:
    system = next((m.get("content") for m in body["messages"] if m.get("role") == "system"), "") or ""
    if EXTRACTION_MARK in str(system):
        return Reply(text=json.dumps({"memory": [{"id": "0", "text": "User likes green tea"}]}))  # stated: below
    return Reply(text="default answer")


class TestTwoApisTwoWorkers:
    async def test_two_hundred_turns_from_twenty_users_lose_and_duplicate_nothing(
        self, cluster: tuple[Settings, list[str]], stub: StubOpenAI, engine_for: EngineFor
    ) -> None:
        settings, urls = cluster
        stub.responder = answer_or_extraction
        sessionmaker = engine_for(settings)
        users = [await new_user_headers(sessionmaker, settings) for _ in range(20)]
        statuses: list[int] = []

        async def converse(n: int, headers: dict[str, str]) -> str:
            async with httpx.AsyncClient(base_url=urls[n % 2], timeout=60) as http:
                session_id = (await http.post("/api/v1/sessions", json={}, headers=headers)).json()["id"]
            for turn in range(10):
                # Alternate API processes and endpoints.
                async with httpx.AsyncClient(base_url=urls[(n + turn) % 2], timeout=60) as http:
                    body = {"session_id": session_id, "message": f"user {n} turn {turn}"}
                    path = "/api/v1/chatbot/chat" if turn % 2 else "/api/v1/chatbot/chat/stream"
                    response = await http.post(path, json=body, headers=headers)
                    statuses.append(response.status_code)
            return str(session_id)

        sessions = await asyncio.gather(*(converse(n, headers) for n, headers in enumerate(users)))

        assert statuses == [200] * 200
        async with sessionmaker() as db:
            for n, session_id in enumerate(sessions):
                rows = (
                    await db.execute(
                        select(Message.role, Message.content)
                        .where(Message.session_id == uuid.UUID(session_id))
                        .order_by(Message.created_at, Message.role)
                    )
                ).all()
                expected = []
                for turn in range(10):
                    expected += [(MessageRole.user, f"user {n} turn {turn}"), (MessageRole.assistant, "default answer")]
                assert [(r.role, r.content) for r in rows] == expected
            runs = (await db.execute(select(Run.status, func.count()).group_by(Run.status))).all()
        assert dict(runs) == {RunStatus.success: 200}
        await drain_jobs(sessionmaker, within=120)

    async def test_an_erasure_on_one_api_wins_over_extractions_queued_on_the_workers(
        self, cluster: tuple[Settings, list[str]], stub: StubOpenAI, engine_for: EngineFor
    ) -> None:
        settings, urls = cluster
        slow = 1.0

        def slow_extraction(body: dict[str, Any]) -> Reply:
            reply = answer_or_extraction(body)
            return Reply(text=reply.text, delay=slow if reply.text.startswith("{") else 0.0)

        stub.responder = slow_extraction
        sessionmaker = engine_for(settings)
        erasing = await new_user_headers(sessionmaker, settings)
        keeping = await new_user_headers(sessionmaker, settings)

        async def five_turns(headers: dict[str, str]) -> str:
            async with httpx.AsyncClient(base_url=urls[0], timeout=60) as http:
                session_id = (await http.post("/api/v1/sessions", json={}, headers=headers)).json()["id"]
                for turn in range(5):
                    await http.post(
                        "/api/v1/chatbot/chat",
                        json={"session_id": session_id, "message": f"I like green tea, number {turn}"},
                        headers=headers,
                    )
            return str(session_id)

        erased_session, kept_session = await asyncio.gather(five_turns(erasing), five_turns(keeping))
        await asyncio.sleep(slow / 2)  # an extraction is running on a worker, the others wait behind it
        async with httpx.AsyncClient(base_url=urls[1], timeout=60) as http:
            erased = await http.delete("/api/v1/memories", headers=erasing)
        await drain_jobs(sessionmaker, within=60)

        assert erased.status_code == 204
        assert await memories_of_session_owner(sessionmaker, erased_session) == 0
        assert await memories_of_session_owner(sessionmaker, kept_session) > 0  # the same turns, not erased


async def memories_of_session_owner(sessionmaker: Any, session_id: str) -> int:
    async with sessionmaker() as db:
        user_id = await db.scalar(text("SELECT user_id FROM chat_sessions WHERE id = :s"), {"s": session_id})
        left = await db.scalar(
            text("SELECT count(*) FROM mem0_minilm_l6_384 WHERE payload->>'user_id' = :u"), {"u": str(user_id)}
        )
    return int(left or 0)


# --- helpers -------------------------------------------------------------------------------------------------
EngineFor = Callable[[Settings], Any]


@pytest.fixture(scope="module")
async def engine_for() -> AsyncIterator[EngineFor]:
    from agentserver.kit.db import create_engine, create_sessionmaker  # noqa: PLC0415 - fixture-local helpers

    engines = []

    def make(settings: Settings) -> Any:
        assert settings.database_url
        engine = create_engine(settings.database_url, pool_size=2)
        engines.append(engine)
        return create_sessionmaker(engine)

    yield make
    for engine in engines:
        await engine.dispose()


async def new_user_headers(sessionmaker: Any, settings: Settings) -> dict[str, str]:
    async with session_scope(sessionmaker) as db:
        user = await create_user(db)
    return auth_headers_for(settings, user)


async def stream(harness: ChatHarness, headers: dict[str, str], session_id: str, message: str) -> httpx.Response:
    async with harness.client() as http:
        return await http.post(
            "/api/v1/chatbot/chat/stream",
            json={"session_id": session_id, "message": message},
            headers=headers,
            timeout=90,
        )


async def chat(harness: ChatHarness, headers: dict[str, str], session_id: str, message: str) -> httpx.Response:
    async with harness.client() as http:
        return await http.post(
            "/api/v1/chatbot/chat", json={"session_id": session_id, "message": message}, headers=headers, timeout=90
        )


async def wait_until(harness: ChatHarness, check: Callable[[Run], bool], *, within: float = 60.0) -> Run:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with harness.state["sessionmaker"]() as db:
            run: Run | None = await db.scalar(select(Run).order_by(Run.created_at.desc()).limit(1))
        if run is not None and check(run):
            return run
        if loop.time() > deadline:
            raise AssertionError(f"the run did not get there: {run.status if run else None}")
        await asyncio.sleep(0.1)
