"""Compiled graphs per assistant: the deployment's built once, users' per version in a bounded LRU."""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from agentserver.agent.assistants import DEFAULT_GRAPH_ID, Assistant, AssistantSpec, default_catalog
from agentserver.agent.runtime import AgentGraphs
from agentserver.agent.tools import build_tools
from agentserver.config import Settings


def _graphs(settings: Settings, size: int) -> AgentGraphs:
    return AgentGraphs(
        settings=settings.model_copy(update={"assistant_graph_cache_size": size}),
        llm=None,
        checkpointer=InMemorySaver(),  # type: ignore[arg-type]
        tools=build_tools(search=None, weather=None),
        catalog=default_catalog(),
        cache=None,
    )


def _mine(assistant_id: uuid.UUID, version: int, **spec: Any) -> Assistant:
    return Assistant(
        id=assistant_id,
        name="mine",
        graph_id=DEFAULT_GRAPH_ID,
        spec=AssistantSpec(name="mine", **spec),
        owner_id=uuid.uuid4(),
        version=version,
    )


class TestAgentGraphs:
    async def test_a_version_is_compiled_once_and_an_edit_gets_a_new_graph(self, settings: Settings) -> None:
        graphs = _graphs(settings, 8)
        first_id = uuid.uuid4()

        v1 = await graphs.get(_mine(first_id, 1, tools=["calculator"]))
        again = await graphs.get(_mine(first_id, 1, tools=["calculator"]))
        v2 = await graphs.get(_mine(first_id, 2, tools=[]))

        assert again is v1
        assert graphs.cached(first_id, 1) is v1
        assert v2 is not v1
        assert (v1.tools, v2.tools) == (("calculator",), ())

    async def test_the_cache_is_bounded_least_recently_used_first(self, settings: Settings) -> None:
        graphs = _graphs(settings, 2)
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

        await graphs.get(_mine(a, 1))
        await graphs.get(_mine(b, 1))
        assert graphs.cached(a, 1) is not None  # a is now the most recently used
        await graphs.get(_mine(c, 1))

        assert graphs.cached(b, 1) is None
        assert graphs.cached(a, 1) is not None
        assert graphs.cached(c, 1) is not None

    async def test_deployment_assistants_are_always_there_and_none_means_the_default(self, settings: Settings) -> None:
        graphs = _graphs(settings, 1)
        catalog = graphs.catalog

        assert graphs.cached(None, None) is graphs.default
        assert graphs.default.assistant.name == "agent"
        researcher = catalog.by_name("researcher")
        assert researcher is not None
        agent = graphs.cached(researcher.id, None)
        assert agent is not None
        assert agent.assistant is researcher
        # web_search is off here (no search backend): the researcher keeps what exists.
        assert agent.tools == ("calculator",)
        assert graphs.cached(uuid.uuid4(), None) is None  # a user's, not yet read
