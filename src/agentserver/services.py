"""The services one agentserver process runs on, for both of its roles.

    API (+ in-process worker, the default of `agentserver serve`) ─┐
    worker alone (`agentserver worker`) ───────────────────────────┴─► open_services(settings, stack, worker=...)

Everything is created here and closed by the caller's AsyncExitStack in reverse order: the worker stops
first (its runs drain while the model, memory and database are still up), the database last.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agentserver.agent.assistants import load_assistants_file
from agentserver.agent.runtime import AgentRuntime, open_agent
from agentserver.cache import ResponseCache
from agentserver.config import Settings
from agentserver.documents.jobs import Ingestion
from agentserver.documents.runtime import Documents, open_documents
from agentserver.documents.search import DocumentSearch
from agentserver.documents.tool import files_section, search_documents_tool
from agentserver.erasure import Erasure
from agentserver.jobs.handlers import JobHandlers
from agentserver.kit import migrations
from agentserver.kit.db import create_engine, create_sessionmaker, wait_for_database
from agentserver.kit.embedded_postgres import EmbeddedPostgres, PostgresSupervisor
from agentserver.kit.pg_listen import PgListener
from agentserver.kit.redis import AsyncRedis, redis_readiness, start_redis
from agentserver.kit.tasks import TaskSet
from agentserver.llm.service import LLMService
from agentserver.memory.jobs import MEMORY_EXTRACT_JOB, extraction_handler
from agentserver.memory.runtime import open_memory
from agentserver.memory.service import MemoryService
from agentserver.observability.db_pool import pool_collector, sqlalchemy_pool_sampler
from agentserver.observability.loop_lag import loop_lag_probe
from agentserver.observability.tracing_sdk import Tracing
from agentserver.runs.eventlog import EventLog, PostgresEventLog, RedisEventLog
from agentserver.runs.executor import RunExecutor
from agentserver.runs.live import LiveRuns
from agentserver.runs.streaming import RunStreams
from agentserver.runs.worker import Worker, WorkerConfig, new_worker_id
from agentserver.state import ReadinessCheck
from agentserver.usage.metrics import top_spenders_loop

log = structlog.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    listener: PgListener
    redis: AsyncRedis | None
    event_log: EventLog
    live_runs: LiveRuns
    run_streams: RunStreams
    llm: LLMService | None
    agent: AgentRuntime
    memory: MemoryService | None
    cache: ResponseCache | None
    erasure: Erasure
    tasks: TaskSet
    documents: Documents | None = None
    worker: Worker | None = None
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    optional_checks: dict[str, ReadinessCheck] = field(default_factory=dict)


async def start_database(settings: Settings, stack: AsyncExitStack) -> str:
    """The configured DATABASE_URL, or an embedded server migrated to head, supervised (restarted if it
    dies) while the app runs and stopped when the stack closes."""
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    # Blocking subprocess work (initdb, pg_ctl): keep it off the event loop.
    url = await asyncio.to_thread(embedded.start)
    stack.push_async_callback(asyncio.to_thread, embedded.stop)
    await asyncio.to_thread(migrations.upgrade, url)
    # Entered after the stop callback, so it exits first: no restart can race the shutdown.
    await stack.enter_async_context(PostgresSupervisor(embedded).running())
    return url


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        run_concurrency=settings.run_concurrency,
        job_concurrency=settings.job_concurrency,
        heartbeat_seconds=settings.run_heartbeat_seconds,
        max_attempts=settings.run_max_attempts,
        drain_seconds=settings.run_drain_seconds,
        poll_seconds=settings.run_poll_seconds,
        events_retention_seconds=settings.run_events_retention_seconds,
    )


async def open_services(
    settings: Settings, stack: AsyncExitStack, *, worker: bool, tracing: Tracing | None = None
) -> Services:
    # Tracing first (its instrumentations must see the clients and pools being created) and closed last
    # (the final spans are flushed after everything else stopped). None: off, nothing created.
    # The assistants file first: a mistake in it stops start-up before anything is started.
    assistants_config = load_assistants_file(settings.assistants_file)
    tracing = tracing or Tracing.from_settings(settings)
    if tracing is not None:
        tracing.start()
        stack.push_async_callback(tracing.stop)
    database_url = await start_database(settings, stack)
    engine = create_engine(
        database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        connect_timeout=settings.database_connect_timeout_seconds,
    )
    stack.push_async_callback(engine.dispose)
    if tracing is not None:
        tracing.instrument_engine(engine)
    stack.enter_context(pool_collector.track("app", sqlalchemy_pool_sampler(engine)))
    await wait_for_database(engine, settings.database_connect_timeout_seconds)
    sessionmaker = create_sessionmaker(engine)

    async def database_ready() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    listener = PgListener(engine)
    redis = await start_redis(settings, stack)
    event_log: EventLog
    if settings.redis_url:
        event_log = RedisEventLog(settings.redis_url, settings.redis_key_prefix, settings.run_events_retention_seconds)
    else:
        event_log = PostgresEventLog(sessionmaker, listener)
    stack.push_async_callback(event_log.close)

    # The model only where runs execute. LLM_PROVIDER=local (or auto without keys) assembles the model if
    # missing and loads it (seconds).
    llm = None
    if worker:
        log.info("app.starting", step="llm", detail="starting the language model (the embedded one: seconds)")
        llm = await LLMService.start(settings)
        stack.push_async_callback(llm.aclose)
    cache = (
        ResponseCache(settings.cache_ttl_seconds, redis, key_prefix=settings.redis_key_prefix)
        if settings.cache_enabled
        else None
    )
    if settings.memory_enabled:
        log.info("app.starting", step="memory", detail="loading the embedding model and mem0: a few seconds")
    memory = await open_memory(settings, database_url, llm, stack)
    documents = await open_documents(settings)
    document_tools = (
        [search_documents_tool(DocumentSearch(sessionmaker, documents), settings.documents_search_top_k)]
        if documents is not None
        else []
    )
    agent = await open_agent(
        settings, database_url, llm, stack, cache=cache, config=assistants_config, extra_tools=document_tools
    )
    live_runs = LiveRuns()
    erasure = Erasure(
        sessionmaker=sessionmaker,
        event_log=event_log,
        memory=memory,
        cache=cache,
        sweep_delay_seconds=2.5 * settings.run_heartbeat_seconds,
    )
    services = Services(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        listener=listener,
        redis=redis,
        event_log=event_log,
        live_runs=live_runs,
        run_streams=RunStreams(event_log, live_runs, sessionmaker),
        llm=llm,
        agent=agent,
        memory=memory,
        cache=cache,
        erasure=erasure,
        tasks=TaskSet(),
        documents=documents,
        readiness_checks={"database": database_ready},
    )
    if redis is not None:
        services.optional_checks["redis"] = redis_readiness(redis)
    if llm is not None:
        services.readiness_checks["llm"] = llm.check

    if worker:
        assert llm is not None
        handlers = JobHandlers()
        erasure.register(handlers)
        if memory is not None:
            handlers.register(MEMORY_EXTRACT_JOB, extraction_handler(memory, sessionmaker))
        if documents is not None:
            Ingestion(documents, sessionmaker).register(handlers)
        executor = RunExecutor(
            agents=agent.graphs,
            sessionmaker=sessionmaker,
            event_log=event_log,
            live_runs=live_runs,
            worker_id=new_worker_id(),
            memory=memory,
            extract_memories=memory is not None,
            files=files_section if documents is not None else None,
        )
        services.worker = Worker(
            config=worker_config(settings),
            sessionmaker=sessionmaker,
            executor=executor,
            handlers=handlers,
            event_log=event_log,
            listener=listener,
        )
    # Listen once every consumer has registered its channels.
    await listener.start(wait_seconds=settings.database_connect_timeout_seconds)
    stack.push_async_callback(listener.stop)
    if services.worker is not None:
        await services.worker.start()
        stack.push_async_callback(services.worker.stop)
        if settings.usage_top_users > 0:
            # The top spenders gauge (usage/metrics.py): worker processes only, one query a minute.
            top_spenders = asyncio.create_task(
                top_spenders_loop(
                    sessionmaker, top=settings.usage_top_users, every_seconds=settings.usage_top_users_refresh_seconds
                ),
                name="usage-top-spenders",
            )
            stack.push_async_callback(_cancel, top_spenders)
    stack.push_async_callback(services.tasks.drain, 5.0)
    await stack.enter_async_context(loop_lag_probe())
    return services
