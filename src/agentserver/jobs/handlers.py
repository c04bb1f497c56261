"""The registry of job kinds: each domain registers the handler of its jobs at start-up.

A handler takes the claimed job (ids in its payload, never personal text), opens its own sessions, and
must be idempotent: a job whose worker died is run again. Raising retries it with backoff, up to the
job's max_attempts; `JobSkipped` ends it quietly (its subject is gone). A kind may also register
`on_gave_up`: called when the reaper fails a job for good because its last attempt's worker died (the
handler never saw that end), so the job's subject can say so (e.g. a file's status).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agentserver.jobs.repository import ClaimedJob

JobHandler = Callable[[ClaimedJob], Awaitable[None]]


class JobSkipped(Exception):
    """Nothing to do any more (e.g. the user or the messages are gone): the job ends as done."""


class JobHandlers:
    def __init__(self) -> None:
        self._handlers: dict[str, JobHandler] = {}
        self._gave_up: dict[str, JobHandler] = {}

    def register(self, kind: str, handler: JobHandler, *, on_gave_up: JobHandler | None = None) -> None:
        if kind in self._handlers:
            raise ValueError(f"job kind {kind!r} already has a handler")
        self._handlers[kind] = handler
        if on_gave_up is not None:
            self._gave_up[kind] = on_gave_up

    def get(self, kind: str) -> JobHandler | None:
        return self._handlers.get(kind)

    def gave_up(self, kind: str) -> JobHandler | None:
        return self._gave_up.get(kind)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)
