"""PostgreSQL LISTEN/NOTIFY: one dedicated connection per process, callbacks per channel.

Notifications are wake-up calls, never the data itself: PostgreSQL drops them while the listener is
disconnected, so every consumer also polls (slowly) and `on_reconnect` callbacks run after a reconnect to
catch up. Sending is `await notify(session, channel, payload)` inside a transaction: PostgreSQL delivers
it at commit, and never for a rolled-back transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

log = structlog.get_logger(__name__)

Callback = Callable[[str], None]
MAX_BACKOFF_SECONDS = 5.0


async def notify(session: AsyncSession | AsyncConnection, channel: str, payload: str = "") -> None:
    await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


class PgListener:
    def __init__(self, engine: AsyncEngine) -> None:
        # The same server and credentials as the engine, on a connection of its own (outside the pool).
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._connect_args: tuple[list[Any], dict[str, Any]] = (list(args), dict(kwargs))
        self._callbacks: dict[str, list[Callback]] = {}
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self.connected = asyncio.Event()

    def on(self, channel: str, callback: Callback) -> None:
        """Call `callback(payload)` for every notification on `channel` (register before start())."""
        self._callbacks.setdefault(channel, []).append(callback)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect_callbacks.append(callback)

    async def start(self, *, wait_seconds: float = 5.0) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listener")
        try:
            await asyncio.wait_for(self.connected.wait(), wait_seconds)
        except TimeoutError:
            log.warning("pg_listen.not_connected_yet")  # consumers poll meanwhile

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _dispatch(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("pg_listen.callback_failed", channel=channel)

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            lost = asyncio.Event()
            connection: asyncpg.Connection | None = None
            try:
                args, kwargs = self._connect_args
                connection = await asyncpg.connect(*args, **kwargs)
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._callbacks:
                    await connection.add_listener(channel, self._dispatch)
                self._connection = connection
                self.connected.set()
                backoff = 0.1
                if not first:
                    log.info("pg_listen.reconnected")
                    for callback in self._reconnect_callbacks:
                        callback()
                first = False
                await lost.wait()
                log.warning("pg_listen.connection_lost")
            except asyncio.CancelledError:
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("pg_listen.connect_failed", error=type(exc).__name__, retry_in_seconds=backoff)
            finally:
                self.connected.clear()
                self._connection = None
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            try:
                await asyncio.sleep(backoff)
            except asyncio.CancelledError:
                break
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
