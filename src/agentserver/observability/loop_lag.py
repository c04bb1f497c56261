"""Event-loop lag: how late the loop runs a callback that asked to wake up on time.

Everything an API process does shares one event loop; a step that holds it (CPU work, a blocking call)
delays every request and stream. The probe sleeps PROBE_SECONDS again and again and records how late it
woke (`agentserver_event_loop_lag_seconds`): a responsive process stays at a millisecond or two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agentserver.observability.metrics import EVENT_LOOP_LAG

PROBE_SECONDS = 0.05


async def _probe() -> None:
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + PROBE_SECONDS
        await asyncio.sleep(PROBE_SECONDS)
        EVENT_LOOP_LAG.observe(max(0.0, loop.time() - asked))


@asynccontextmanager
async def loop_lag_probe() -> AsyncIterator[None]:
    task = asyncio.create_task(_probe(), name="event-loop-lag-probe")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
