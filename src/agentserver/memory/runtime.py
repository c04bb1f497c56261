"""`open_memory()`: the lifespan's entry point to long-term memory (None when MEMORY_ENABLED is false)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from agentserver.config import Settings
from agentserver.llm.service import LLMService
from agentserver.memory.service import MemoryService
from agentserver.observability.db_pool import pool_collector, psycopg_pool_sampler


async def open_memory(
    settings: Settings, database_url: str, llm: LLMService | None, stack: AsyncExitStack
) -> MemoryService | None:
    """Start the memory service (closed when `stack` closes), or None if memory is off.

    `llm` is the model extraction uses: None in a process that runs no worker (it only searches and lists).
    """
    if not settings.memory_enabled:
        return None
    # mem0 takes seconds to import: a server with memory off (and every CLI command) never loads it.
    from agentserver.memory.backend import start_memory  # noqa: PLC0415

    memory = await stack.enter_async_context(
        start_memory(settings, database_url, llm.background_model() if llm else None)
    )
    stack.enter_context(pool_collector.track("memory", psycopg_pool_sampler(memory.store.pool)))
    return memory
