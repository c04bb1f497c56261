"""Numbers a run's events, publishes them live, and writes them to the event log in batches.

Tokens are coalesced: a token that arrives within `COALESCE_SECONDS` of the previous token event is held
and merged with the next ones, so a fast model writes a few events per second instead of one per token
(the first token of a burst is never held). The log is written every `FLUSH_SECONDS`, and at once for the
events a stream ends on; a failing log write is logged and never fails the run.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import structlog

from agentserver.runs import events
from agentserver.runs.eventlog import EventLog
from agentserver.runs.events import RunEvent
from agentserver.runs.live import LiveRun

log = structlog.get_logger(__name__)

COALESCE_SECONDS = 0.025
FLUSH_SECONDS = 0.05


class RunEmitter:
    def __init__(self, run_id: uuid.UUID, event_log: EventLog, live: LiveRun, last_seq: int) -> None:
        self.run_id = run_id
        self.log = event_log
        self.live = live
        self.seq = last_seq
        self._unlogged: list[RunEvent] = []
        self._pending_token = ""
        self._last_token_at = 0.0
        self._token_timer: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # --- publishing ---------------------------------------------------------------------------------
    def emit(self, event: RunEvent) -> RunEvent:
        self._release_token()
        return self._publish(event)

    def token(self, text: str) -> None:
        if not text:
            return
        self._pending_token += text
        now = time.monotonic()
        if now - self._last_token_at >= COALESCE_SECONDS:
            self._release_token()
        elif self._token_timer is None:
            delay = COALESCE_SECONDS - (now - self._last_token_at)
            self._token_timer = asyncio.get_running_loop().call_later(delay, self._release_token)

    def _release_token(self) -> None:
        if self._token_timer is not None:
            self._token_timer.cancel()
            self._token_timer = None
        if self._pending_token:
            text, self._pending_token = self._pending_token, ""
            self._last_token_at = time.monotonic()
            self._publish(events.token(text))

    def _publish(self, event: RunEvent) -> RunEvent:
        self.seq += 1
        numbered = event.with_seq(self.seq)
        self.live.publish(numbered)
        self._unlogged.append(numbered)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon(), name=f"run-events-{self.run_id}")
        return numbered

    # --- logging ------------------------------------------------------------------------------------
    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Write what is not logged yet (pending tokens included); safe to call at any time."""
        self._release_token()
        async with self._lock:
            batch, self._unlogged = self._unlogged, []
            if not batch:
                return
            try:
                await self.log.append(self.run_id, batch)
            except Exception as exc:
                # Live followers have the events; followers of the log get the outcome from the run's row.
                log.warning("runs.event_log_failed", run_id=str(self.run_id), error=type(exc).__name__)

    async def close(self) -> None:
        """Flush everything; the caller then closes the live run."""
        await self.flush()
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()  # asleep, or about to find nothing to write
            await asyncio.gather(self._flusher, return_exceptions=True)
