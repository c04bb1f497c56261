"""An event loop of its own, in a thread of its own, for mem0.

mem0's AsyncMemory wraps every synchronous step (embedding, SQL, the LLM call) in `asyncio.to_thread`,
which uses the loop's default executor. On the app's loop those steps would hold threads of the shared
default executor for as long as an extraction's model call lasts, and everything else that uses it
(DNS lookups for new connections, `to_thread` callers) would wait behind them. Here mem0 gets a loop
whose default executor is its own, bounded pool: its slowness stays its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class IsolatedLoop:
    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.threads = threads
        self.loop: asyncio.AbstractEventLoop | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"{name}-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(self._executor)
        self.loop = loop
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await `coroutine` on the isolated loop; cancelling the caller cancels it there."""
        assert self.loop is not None, "start() first"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking function on the isolated pool."""
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and its pool (blocking: call it from a thread, or at the very end)."""
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)
