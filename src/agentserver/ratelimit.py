"""Rate limits: named policies from the settings, enforced with the `limits` library.

Storage is Redis when REDIS_URL is set (so N processes on M hosts share one budget per key) and
process memory otherwise. The strategy is a moving window: no burst of 2x at a window boundary.

Keys:
- every request: the `default` policy per client IP (`RateLimitMiddleware`);
- login / register: their policy per client IP *and* per account, the account being an HMAC of the
  normalised email/username (raw emails never reach Redis);
- chat / stream: `chat` per user when the request carries a valid access token, `chat_anonymous`
  per client IP otherwise.

A refused request is a 429 with `Retry-After`, `X-RateLimit-Limit/Remaining/Reset` (reset as epoch
seconds) and the standard error body; allowed requests on limited routes carry the same
`X-RateLimit-*` headers. When the storage fails (Redis down), requests are let through (fail open),
counted in `agentserver_rate_limit_storage_errors_total`, and logged at most once per interval; the
limiter then skips the storage for a few seconds so an outage never adds latency to every request.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import limits
import structlog
from fastapi import Depends, Request
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentserver.auth.api_keys import is_api_key, key_digest
from agentserver.auth.security import InvalidToken, TokenType, decode_token
from agentserver.config import Settings
from agentserver.kit.errors import TooManyRequests, error_response
from agentserver.kit.proxy import TrustedProxies
from agentserver.kit.redis import AsyncRedis
from agentserver.observability.metrics import RATE_LIMIT_STORAGE_ERRORS, RATE_LIMITED

log = structlog.get_logger(__name__)

# After a storage failure: let requests through without asking the storage for this long.
STORAGE_BACKOFF_SECONDS = 5.0
# At most one full error log (with traceback) per this many seconds during an outage.
STORAGE_ERROR_LOG_INTERVAL_SECONDS = 60.0
# Liveness/readiness probes and scrapes come from the platform, at its own pace: never limited.
UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})
# Where a limited route leaves its result for RateLimitMiddleware to turn into response headers.
_SCOPE_STATE_KEY = "ratelimit_status"


class Policy(enum.StrEnum):
    default = "default"
    login = "login"
    register = "register"
    chat = "chat"
    chat_anonymous = "chat_anonymous"


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """One policy's verdict for one key."""

    policy: Policy
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when one more request fits again

    def retry_after(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.reset_at - (now if now is not None else time.time())))

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after())
        return headers


def rate_limited(status: LimitStatus) -> TooManyRequests:
    """The 429 for a refused request (rendered as `TooManyRequests`, with Retry-After and X-RateLimit-*)."""
    return TooManyRequests("Too many requests, retry later", headers=status.headers())


def _tightest(statuses: Iterable[LimitStatus]) -> LimitStatus | None:
    """The status a client should be shown: a refusal first, else the one with the least room left."""
    ordered = sorted(statuses, key=lambda s: (s.allowed, s.remaining, -s.reset_at))
    return ordered[0] if ordered else None


class RateLimiter:
    """The app's rate limiter: policies, storage and fail-open handling. One per process (lifespan).

    Args:
        settings: RATE_LIMIT_* settings, TRUSTED_PROXIES and the secret that keys account hashes.
        redis: the shared client when REDIS_URL is set; None for in-process memory storage.
        key_prefix: Redis key prefix, so deployments (and test runs) sharing a Redis stay apart.
    """

    def __init__(self, settings: Settings, redis: AsyncRedis | None = None, *, key_prefix: str = "agentserver") -> None:
        self.enabled = settings.rate_limit_enabled
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.policies: dict[Policy, limits.RateLimitItem] = {}
        for policy in Policy:
            raw = getattr(settings, f"rate_limit_{policy.value}")
            try:
                self.policies[policy] = limits.parse(raw)
            except ValueError as exc:
                raise ValueError(f"RATE_LIMIT_{policy.value.upper()}: {raw!r} is not like '10/minute'") from exc
        self._account_key = hashlib.sha256(
            b"agentserver.ratelimit.account:" + settings.jwt_secret_key.get_secret_value().encode()
        ).digest()
        self.storage: Storage
        if redis is not None:
            # redis-py, on the app's shared connection pool (the uri only names the scheme then).
            self.storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=f"{key_prefix}:ratelimit",
                connection_pool=redis.connection_pool,
            )
        else:
            self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._skip_storage_until = 0.0
        self._last_error_log = -math.inf

    @property
    def backend(self) -> str:
        return "redis" if isinstance(self.storage, RedisStorage) else "memory"

    def client_ip(self, scope: Scope) -> str:
        return self.proxies.client_ip(scope)

    def account_key(self, account: str) -> str:
        """A stable, non-reversible id for an email/username (case and surrounding space ignored)."""
        normalised = account.strip().lower().encode("utf-8", "surrogatepass")
        return hmac.new(self._account_key, normalised, hashlib.sha256).hexdigest()[:32]

    async def hit(self, policy: Policy, kind: str, identity: str) -> LimitStatus | None:
        """Count one request against `policy` for (`kind`, `identity`).

        Returns None when limiting is off or the storage failed (the request is let through).
        """
        if not self.enabled:
            return None
        if time.monotonic() < self._skip_storage_until:
            RATE_LIMIT_STORAGE_ERRORS.inc()
            return None
        item = self.policies[policy]
        try:
            allowed = await self.strategy.hit(item, policy.value, kind, identity)
            stats = await self.strategy.get_window_stats(item, policy.value, kind, identity)
        except Exception as exc:
            # Boundary: a broken storage must never turn into a 500 or block traffic.
            self._storage_failed(policy, exc)
            return None
        reset_at = stats.reset_time if stats.remaining < item.amount else time.time() + item.get_expiry()
        status = LimitStatus(policy, allowed, item.amount, stats.remaining, reset_at)
        if not allowed:
            RATE_LIMITED.labels(policy=policy.value).inc()
        return status

    def _storage_failed(self, policy: Policy, exc: Exception) -> None:
        RATE_LIMIT_STORAGE_ERRORS.inc()
        now = time.monotonic()
        if now - self._last_error_log >= STORAGE_ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_log = now
            # The error's class and message say what is wrong (refused, timeout, auth); a traceback of
            # the client library would not, and would be rendered once per interval for nothing.
            log.error(
                "ratelimit.storage_error",
                backend=self.backend,
                policy=policy.value,
                error=type(exc).__name__,
                reason=str(exc)[:300],
                action="failing open",
                backoff_seconds=STORAGE_BACKOFF_SECONDS,
            )
        else:
            log.debug("ratelimit.storage_error", backend=self.backend, policy=policy.value, error=type(exc).__name__)
        self._skip_storage_until = time.monotonic() + STORAGE_BACKOFF_SECONDS

    async def check(self) -> None:
        """Readiness: the storage answers (raises otherwise)."""
        if not await self.storage.check():
            raise ConnectionError("rate-limit storage unavailable")


def record(scope: Scope, status: LimitStatus | None) -> None:
    """Remember a route's verdict so RateLimitMiddleware puts its X-RateLimit-* headers on the response."""
    if status is None:
        return
    state = scope.setdefault("state", {})
    previous = state.get(_SCOPE_STATE_KEY)
    state[_SCOPE_STATE_KEY] = _tightest([status, previous] if previous else [status])


def enforce(scope: Scope, statuses: Sequence[LimitStatus | None]) -> None:
    """Record the tightest verdict and raise a 429 if any policy refused the request."""
    tightest = _tightest(s for s in statuses if s is not None)
    record(scope, tightest)
    if tightest is not None and not tightest.allowed:
        raise rate_limited(tightest)


def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.state.rate_limiter
    return limiter


async def _account_from_body(request: Request, field: str) -> str | None:
    """The account named in a JSON or form body. FastAPI caches the body, so the endpoint still reads it."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    value: Any = None
    try:
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            value = (await request.form()).get(field)
        elif content_type == "application/json" or content_type.endswith("+json"):
            body = json.loads(await request.body())
            value = body.get(field) if isinstance(body, dict) else None
    except (ValueError, UnicodeDecodeError):
        # Malformed bodies are the endpoint's to reject (422); the IP limit still applies.
        return None
    return value if isinstance(value, str) and value.strip() else None


class RateLimit:
    """A FastAPI dependency enforcing one policy on a route: `dependencies=[Depends(RateLimit(...))]`.

    Args:
        policy: the policy (its limit comes from RATE_LIMIT_<POLICY>).
        account_field: also limit per account, named by this JSON/form body field (login, register).
        anonymous_policy: key by user when the request carries a valid access token, and by client IP
            under this policy otherwise (chat).
    """

    def __init__(
        self, policy: Policy, *, account_field: str | None = None, anonymous_policy: Policy | None = None
    ) -> None:
        self.policy = policy
        self.account_field = account_field
        self.anonymous_policy = anonymous_policy

    async def __call__(self, request: Request) -> None:
        limiter = get_rate_limiter(request)
        if not limiter.enabled:
            return
        if self.anonymous_policy is not None:
            user_id = _user_from_token(request)
            if user_id is not None:
                enforce(request.scope, [await limiter.hit(self.policy, "user", user_id)])
            else:
                ip = limiter.client_ip(request.scope)
                enforce(request.scope, [await limiter.hit(self.anonymous_policy, "ip", ip)])
            return
        by_ip = await limiter.hit(self.policy, "ip", limiter.client_ip(request.scope))
        # Refused by IP: do not also spend the account's budget (the account owner is not the attacker).
        enforce(request.scope, [by_ip])
        if self.account_field is None:
            return
        account = await _account_from_body(request, self.account_field)
        if account is not None:
            by_account = await limiter.hit(self.policy, "account", limiter.account_key(account))
            enforce(request.scope, [by_ip, by_account])


def _user_from_token(request: Request) -> str | None:
    """The user id of a valid access token, or None. Only the signature decides: a forged `sub`
    must not spend another user's budget. An API key (bearer or `x-api-key`) is its own identity, by
    digest: checking it needs the database, and only its holder can spend its budget."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    token = token or request.headers.get("x-api-key", "").strip()
    if not token:
        return None
    if is_api_key(token):
        return f"key:{key_digest(token)}"
    settings: Settings = request.state.settings
    try:
        return str(decode_token(settings, token.strip(), TokenType.access).subject)
    except InvalidToken:
        return None


rate_limit_login = RateLimit(Policy.login, account_field="username")
rate_limit_register = RateLimit(Policy.register, account_field="email")
rate_limit_chat = RateLimit(Policy.chat, anonymous_policy=Policy.chat_anonymous)

LoginRateLimit = Annotated[None, Depends(rate_limit_login)]
RegisterRateLimit = Annotated[None, Depends(rate_limit_register)]
ChatRateLimit = Annotated[None, Depends(rate_limit_chat)]


class RateLimitMiddleware:
    """The `default` policy per client IP on every HTTP request, and X-RateLimit-* on every response.

    Pure ASGI (streams untouched). The route policies' verdicts (recorded by `RateLimit`) win over the
    default one in the headers, being the tighter and more specific.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter | None = scope.get("state", {}).get("rate_limiter")
        if limiter is None or not limiter.enabled:
            await self.app(scope, receive, send)
            return
        status = await limiter.hit(Policy.default, "ip", limiter.client_ip(scope))
        if status is not None and not status.allowed:
            error = rate_limited(status)
            response = error_response(type(error).__name__, error.message, error.status_code, error.headers)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                shown = scope.get("state", {}).get(_SCOPE_STATE_KEY) or status
                headers = list(message.get("headers", []))
                # A route's own 429 already carries its headers (and its Retry-After): leave them alone.
                if shown is not None and not any(k.lower() == b"x-ratelimit-limit" for k, _ in headers):
                    headers += [
                        (k.lower().encode(), v.encode()) for k, v in shown.headers().items() if k != "Retry-After"
                    ]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
