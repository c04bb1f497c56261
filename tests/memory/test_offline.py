"""Offline means offline: memory add + search with the local embedder and the scripted LLM open no
connection outside loopback, and mem0's telemetry is off."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import mem0.memory.telemetry
import pytest

from agentserver.llm.fake import FakeChatModel
from agentserver.memory.backend import start_memory
from tests.memory.conftest import extraction, memory_settings_for
from tests.memory.netaudit import RemoteConnectionRefused, no_remote_connections


class TestNoNetwork:
    def test_the_audit_hook_refuses_a_remote_connection(self) -> None:
        # The guard itself works: a connection to a public address is stopped before it is made.
        with no_remote_connections() as seen, pytest.raises(RemoteConnectionRefused):
            socket.create_connection(("192.0.2.1", 80), timeout=1)

        assert seen.remote == [("AF_INET", ("192.0.2.1", 80))]

    async def test_start_add_and_search_stay_local(self, memory_database_url: str, tmp_path: Path) -> None:
        settings = memory_settings_for(memory_database_url, tmp_path)
        model = FakeChatModel(script=[extraction("User is vegetarian")], echo_when_exhausted=False)
        user = uuid.uuid4()

        with no_remote_connections() as seen:
            async with start_memory(settings, memory_database_url, model) as memory:
                await memory.extract(user, uuid.uuid4(), "I am vegetarian", "Noted.")
                hits = await memory.search(user, "What should I cook for dinner?", 5)

        assert [hit.text for hit in hits] == ["User is vegetarian"]
        assert seen.remote == []

    def test_mem0_telemetry_is_off(self) -> None:
        assert mem0.memory.telemetry.MEM0_TELEMETRY is False
