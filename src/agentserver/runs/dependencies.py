"""Run-related dependencies, typed on HTTPConnection so HTTP and WebSocket routes share them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from agentserver.agent.runtime import AgentRuntime
from agentserver.kit.tasks import TaskSet
from agentserver.runs.eventlog import EventLog
from agentserver.runs.streaming import RunStreams


async def get_event_log(conn: HTTPConnection) -> EventLog:
    event_log: EventLog = conn.state.event_log
    return event_log


async def get_run_streams(conn: HTTPConnection) -> RunStreams:
    streams: RunStreams = conn.state.run_streams
    return streams


async def get_agent(conn: HTTPConnection) -> AgentRuntime:
    agent: AgentRuntime = conn.state.agent
    return agent


async def get_tasks(conn: HTTPConnection) -> TaskSet:
    tasks: TaskSet = conn.state.tasks
    return tasks


EventLogDep = Annotated[EventLog, Depends(get_event_log)]
RunStreamsDep = Annotated[RunStreams, Depends(get_run_streams)]
AgentDep = Annotated[AgentRuntime, Depends(get_agent)]
TasksDep = Annotated[TaskSet, Depends(get_tasks)]
