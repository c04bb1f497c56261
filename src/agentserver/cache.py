"""Response cache for model calls (opt-in: CACHE_ENABLED).

The key is the *whole* model request — model name, every message with its role, content, tool calls
and tool-call ids, the bound tools' schemas, the call parameters — plus the user. The guide's
(user, last message) key answers "and then?" with a stale reply from another conversation; a full
request key can only hit when the model would see exactly the same input (SPEC §6).

The user id is part of the storage key, not just the hash input, so one user's answers can never be
served to another, and `clear_user()` can erase a user's entries on account deletion.

Storage is Redis (`SET ... EX`) when REDIS_URL is set, so every process shares the cache, and a
bounded in-process LRU with TTL otherwise. Cache failures are never the request's failure: a broken
Redis makes every lookup a miss (logged, counted).

Usage at the model-call site:

    cache = request.state.cache                      # ResponseCache | None (None: disabled)
    key = request_key(model_name, messages, tools, {"temperature": 0.2})
    if cache and (hit := await cache.get(user_id, key)) is not None:
        return hit                                   # an AIMessage
    answer = await model.ainvoke(messages)
    if cache:
        await cache.set(user_id, key, answer)
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict, messages_from_dict
from langchain_core.utils.function_calling import convert_to_openai_tool

from agentserver.auth.service import UserDeletion
from agentserver.kit.redis import AsyncRedis
from agentserver.observability.metrics import CACHE_ERRORS, CACHE_REQUESTS

log = structlog.get_logger(__name__)

KEY_VERSION = 1  # bump when the key's recipe changes, so old entries simply stop matching
DEFAULT_MAX_ENTRIES = 1024
ERROR_LOG_INTERVAL_SECONDS = 60.0

UserId = uuid.UUID | str


def _message_for_key(message: BaseMessage) -> dict[str, Any]:
    """What the model sees of a message; run ids, timestamps and response metadata are left out."""
    entry: dict[str, Any] = {"type": message.type, "content": message.content}
    if message.name:
        entry["name"] = message.name
    if isinstance(message, AIMessage) and message.tool_calls:
        entry["tool_calls"] = [
            {"id": call.get("id"), "name": call["name"], "args": call["args"]} for call in message.tool_calls
        ]
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id is not None:
        entry["tool_call_id"] = tool_call_id
    role = getattr(message, "role", None)  # ChatMessage
    if isinstance(role, str):
        entry["role"] = role
    return entry


def _tool_for_key(tool: Any) -> Any:
    try:
        return convert_to_openai_tool(tool)
    except (TypeError, ValueError):
        # Not a tool LangChain can describe: its repr still tells requests apart.
        return repr(tool)


def request_key(
    model: str,
    messages: Sequence[BaseMessage],
    tools: Sequence[Any] = (),
    params: Mapping[str, Any] | None = None,
) -> str:
    """A stable hex digest of a full model request.

    Args:
        model: the model name actually called (a fallback model gets its own entries).
        messages: the exact messages sent, system prompt included.
        tools: the bound tools (BaseTool, functions, pydantic models or OpenAI tool dicts).
        params: call parameters that change the answer (temperature, max_tokens, tool_choice, ...).
    """
    document = {
        "v": KEY_VERSION,
        "model": model,
        "messages": [_message_for_key(m) for m in messages],
        "tools": [_tool_for_key(t) for t in tools],
        "params": dict(params or {}),
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class _MemoryStore:
    """A bounded LRU whose entries also expire; single-threaded (the event loop), so no locks."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def get(self, key: str) -> str | None:
        found = self.entries.get(key)
        if found is None:
            return None
        expires_at, value = found
        if expires_at <= time.monotonic():
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return value

    def set(self, key: str, value: str, ttl: int) -> None:
        self.entries[key] = (time.monotonic() + ttl, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self.entries if key.startswith(prefix)]
        for key in doomed:
            del self.entries[key]
        return len(doomed)


class ResponseCache:
    """Per-user cache of model answers (AIMessages) by full request key.

    Args:
        ttl_seconds: how long an answer may be served again (CACHE_TTL_SECONDS).
        redis: the shared client when REDIS_URL is set; None for the in-process LRU.
        key_prefix: REDIS_KEY_PREFIX.
        max_entries: bound of the in-process LRU.
    """

    def __init__(
        self,
        ttl_seconds: int,
        redis: AsyncRedis | None = None,
        *,
        key_prefix: str = "agentserver",
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.redis = redis
        self.prefix = f"{key_prefix}:cache:"
        self.memory = _MemoryStore(max_entries) if redis is None else None
        self._last_error_log = -float("inf")

    def _user_prefix(self, user_id: UserId) -> str:
        # The user id is a UUID: fine in a key, and it keeps a user's entries together for clear_user().
        return f"{self.prefix}{user_id}:"

    def _key(self, user_id: UserId, request_key: str) -> str:
        return f"{self._user_prefix(user_id)}{request_key}"

    async def get(self, user_id: UserId, request_key: str) -> AIMessage | None:
        """The cached answer for this user and request, or None (counted as hit or miss)."""
        key = self._key(user_id, request_key)
        raw: str | bytes | None
        try:
            raw = self.memory.get(key) if self.memory is not None else await self._redis().get(key)
            message = _decode(raw) if raw is not None else None
        except Exception as exc:
            # Boundary: a cache must never fail the request it was meant to speed up.
            self._failed("get", exc)
            message = None
        CACHE_REQUESTS.labels(result="hit" if message is not None else "miss").inc()
        return message

    async def set(self, user_id: UserId, request_key: str, answer: AIMessage) -> None:
        """Store the answer for TTL seconds (failures are logged and ignored)."""
        key = self._key(user_id, request_key)
        value = json.dumps(message_to_dict(answer), ensure_ascii=False, default=str)
        try:
            if self.memory is not None:
                self.memory.set(key, value, self.ttl_seconds)
            else:
                await self._redis().set(key, value, ex=self.ttl_seconds)
        except Exception as exc:
            self._failed("set", exc)

    async def clear_user(self, user_id: UserId) -> int:
        """Erase every entry of one user (account deletion); returns how many were removed."""
        prefix = self._user_prefix(user_id)
        if self.memory is not None:
            return self.memory.delete_prefix(prefix)
        redis = self._redis()
        removed = 0
        batch: list[Any] = []
        async for key in redis.scan_iter(match=f"{_escape_glob(prefix)}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                removed += await redis.delete(*batch)
                batch = []
        if batch:
            removed += await redis.delete(*batch)
        return removed

    async def erase_user(self, deletion: UserDeletion) -> None:
        """A user-deletion hook (DELETE /api/v1/auth/me): cached answers are the user's data too."""
        removed = await self.clear_user(deletion.user_id)
        log.info("cache.user_erased", user_id=str(deletion.user_id), entries=removed)

    def _redis(self) -> AsyncRedis:
        assert self.redis is not None
        return self.redis

    def _failed(self, operation: str, exc: Exception) -> None:
        CACHE_ERRORS.inc()
        now = time.monotonic()
        backend = "redis" if self.redis else "memory"
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_log = now
            log.error(
                "cache.error", operation=operation, backend=backend, error=type(exc).__name__, reason=str(exc)[:300]
            )
        else:
            log.debug("cache.error", operation=operation, backend=backend, error=type(exc).__name__)


def _decode(raw: str | bytes) -> AIMessage | None:
    data = json.loads(raw)
    (message,) = messages_from_dict([data])
    return message if isinstance(message, AIMessage) else None


def _escape_glob(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
