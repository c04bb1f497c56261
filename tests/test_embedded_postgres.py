"""The embedded server's supervisor: restarts a dead postmaster, within bounds, logged and counted.

The retry logic runs against a stand-in server (its own small interface: alive? restart); restarting
a real postmaster after `kill -9` is tests/acceptance/test_outages.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY

from agentserver.kit.embedded_postgres import PostgresSupervisor


class StandInServer:
    """Dead until `restart()` has been called `fail_first` + 1 times."""

    def __init__(self, *, alive: bool = False, fail_first: int = 0) -> None:
        self.alive = alive
        self.fail_first = fail_first
        self.restarts = 0

    def postmaster_alive(self) -> bool:
        return self.alive

    def restart(self) -> None:
        self.restarts += 1
        if self.restarts <= self.fail_first:
            raise RuntimeError("shared memory block is still in use")
        self.alive = True


def _restarts(outcome: str) -> float:
    return REGISTRY.get_sample_value("agentserver_embedded_postgres_restarts_total", {"outcome": outcome}) or 0.0


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the stand-in signals nothing; it is polled like the real one
            await asyncio.sleep(0.01)


def _supervisor(server: StandInServer, **overrides: Any) -> PostgresSupervisor:
    return PostgresSupervisor(server, **{"interval": 0.01, "first_delay": 0.01, **overrides})


class TestPostgresSupervisor:
    async def test_a_dead_server_is_restarted_and_counted(self) -> None:
        server = StandInServer()
        before = _restarts("success")

        async with _supervisor(server).running():
            await _until(lambda: server.alive)

        assert server.restarts == 1
        assert _restarts("success") == before + 1

    async def test_failed_attempts_are_retried(self) -> None:
        server = StandInServer(fail_first=2)
        failures = _restarts("failure")

        async with _supervisor(server).running():
            await _until(lambda: server.alive)

        assert server.restarts == 3
        assert _restarts("failure") == failures + 2

    async def test_it_gives_up_after_the_bounded_attempts(self, app: FastAPI, log_lines: list[dict[str, Any]]) -> None:
        # (`app`: the app's logging configuration, which the captured lines go through)
        server = StandInServer(fail_first=1_000)

        async with _supervisor(server, max_attempts=3).running():
            await _until(lambda: any(line["event"] == "embedded_postgres.restart_gave_up" for line in log_lines))
            await asyncio.sleep(0.1)  # watching on: a server still dead is not restarted again

        assert server.restarts == 3
        assert [line["event"] for line in log_lines if line["event"].startswith("embedded_postgres.")] == [
            "embedded_postgres.died",
            "embedded_postgres.restart_failed",
            "embedded_postgres.restart_failed",
            "embedded_postgres.restart_failed",
            "embedded_postgres.restart_gave_up",
        ]

    async def test_a_running_server_is_left_alone(self) -> None:
        server = StandInServer(alive=True)

        async with _supervisor(server).running():
            await asyncio.sleep(0.1)

        assert server.restarts == 0
