from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from agentserver.agent.runtime import AgentRuntime
from agentserver.chat.service import LongTermMemory


def get_agent(request: Request) -> AgentRuntime:
    agent: AgentRuntime = request.state.agent
    return agent


def get_memory(request: Request) -> LongTermMemory | None:
    memory: LongTermMemory | None = getattr(request.state, "memory", None)
    return memory


AgentDep = Annotated[AgentRuntime, Depends(get_agent)]
MemoryDep = Annotated[LongTermMemory | None, Depends(get_memory)]
