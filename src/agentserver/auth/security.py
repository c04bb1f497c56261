"""Passwords (argon2id via pwdlib, always in a worker thread) and JWTs (PyJWT).

Nothing here touches the database. The hasher is an app resource (built in the lifespan from the
settings, reached through `auth.dependencies.get_password_hasher`) so tests can swap it.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from agentserver.config import Settings


class PasswordHasher:
    """argon2id hashing whose public API is async and never runs the hash on the event loop.

    An argon2 hash takes tens of milliseconds of CPU on purpose; on the loop it would stall every other
    request. The sync `_hash`/`_verify` methods are what runs in the worker thread (and what tests
    override). The dummy hash lets a login for an unknown email cost the same as a wrong password.
    """

    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int = 4, max_concurrent: int | None = None
    ) -> None:
        self._hash_context = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),)
        )
        self._dummy_hash: str | None = None
        # Each running hash holds `memory_kib` and keeps cores busy: a login burst queues here instead of
        # multiplying memory and starving the event loop's thread of CPU. One slot per core by default.
        self._slots = asyncio.Semaphore(max_concurrent or os.cpu_count() or 1)

    @classmethod
    async def from_settings(cls, settings: Settings) -> PasswordHasher:
        hasher = cls(time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib)
        # Computed once at start-up, with the real parameters, so an unknown-email verify costs the same.
        hasher._dummy_hash = await hasher.hash(secrets.token_urlsafe(24))
        return hasher

    def _hash(self, password: str) -> str:
        return self._hash_context.hash(password)

    def _verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        return self._hash_context.verify_and_update(password, password_hash)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hash, password)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one uses outdated parameters, else None)."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, password, password_hash)

    async def verify_dummy(self, password: str) -> None:
        """Burn the time of one verify: the caller answers "wrong credentials" either way."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(24))
        await self.verify(password, self._dummy_hash)


class TokenType(enum.StrEnum):
    access = "access"
    refresh = "refresh"


class InvalidToken(Exception):
    """The token is malformed, expired, signed with another key/algorithm, or of the wrong type."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: uuid.UUID
    jti: uuid.UUID
    type: TokenType
    issued_at: datetime
    expires_at: datetime


_REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "type"]


def issue_token(
    settings: Settings, subject: uuid.UUID, token_type: TokenType, *, now: datetime | None = None
) -> IssuedToken:
    now = now or datetime.now(UTC)
    if token_type is TokenType.access:
        lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    else:
        lifetime = timedelta(days=settings.refresh_token_expire_days)
    jti = uuid.uuid4()
    expires_at = now + lifetime
    claims: dict[str, Any] = {
        "sub": str(subject),
        "iat": now,
        "exp": expires_at,
        "jti": str(jti),
        "type": token_type.value,
    }
    token = jwt.encode(claims, settings.jwt_secret_key.get_secret_value(), algorithm=settings.jwt_algorithm)
    # JWT times have one-second resolution: report the expiry the token really carries.
    return IssuedToken(token=token, jti=jti, expires_at=expires_at.replace(microsecond=0))


def decode_token(settings: Settings, token: str, expected_type: TokenType) -> TokenClaims:
    """Validate signature, expiry, required claims and type; raise InvalidToken on any problem.

    Only the configured algorithm is accepted, so `alg: none` and tokens for another algorithm fail.
    """
    try:
        payload = jwt.decode(
            token,
            settings.jwt_secret_key.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            options={"require": _REQUIRED_CLAIMS},
        )
        claims = TokenClaims(
            subject=uuid.UUID(str(payload["sub"])),
            jti=uuid.UUID(str(payload["jti"])),
            type=TokenType(payload["type"]),
            issued_at=datetime.fromtimestamp(int(payload["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(type(exc).__name__) from exc
    # A refresh token must never open the API, and an access token must never mint new tokens.
    if claims.type is not expected_type:
        raise InvalidToken("wrong token type")
    return claims


def token_digest(token: str) -> str:
    """What the database stores for a refresh token: a leaked table cannot be replayed."""
    return hashlib.sha256(token.encode()).hexdigest()
