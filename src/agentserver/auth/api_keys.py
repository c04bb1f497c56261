"""API keys: users create, list and revoke their own; a key authenticates wherever an access token does.

A key is `ask_` + 43 random URL-safe characters (256 bits). Only its sha256 is stored (a fast hash is
enough for a high-entropy secret: nothing to brute-force), so it is shown once, at creation. Every request
with a key looks it up in the database — no cache — so a revoked or expired key is refused at once by
every process. Its `last_used_at` is written at most once a minute (`LAST_USED_RESOLUTION`): a write per
request would make a busy key's requests queue on its row.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.kit.errors import Conflict, NotFound, Unauthorized
from agentserver.models import ApiKey, User

log = structlog.get_logger(__name__)

API_KEY_PREFIX = "ask_"
# Characters of the key kept in clear (`ask_` + 8) so a person can tell their keys apart.
DISPLAY_PREFIX_LENGTH = len(API_KEY_PREFIX) + 8
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_KEYS_PER_USER = 100


class ApiKeyNotFound(NotFound):
    """The API key does not exist, was revoked, or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("API key not found")


class TooManyApiKeys(Conflict):
    """The caller already has the most API keys allowed; revoke one first."""

    def __init__(self) -> None:
        super().__init__(f"At most {MAX_KEYS_PER_USER} API keys per account; revoke one first")


def is_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ApiKeyRepository:
        return cls(session)

    async def create(self, row: ApiKey) -> ApiKey:
        self.session.add(row)
        await self.session.flush()
        await self.session.refresh(row, ["created_at"])
        return row

    async def count_active(self, user_id: uuid.UUID) -> int:
        statement = select(func.count()).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        return int(await self.session.scalar(statement) or 0)

    async def list_active(self, user_id: uuid.UUID) -> Sequence[ApiKey]:
        """The user's keys that are not revoked (expired ones included: they say when they expired)."""
        statement = (
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
        return (await self.session.scalars(statement)).all()

    async def revoke(self, user_id: uuid.UUID, key_id: uuid.UUID) -> bool:
        row = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(ApiKey.id)
        )
        return row.first() is not None

    async def usable(self, digest: str) -> tuple[ApiKey, User] | None:
        """The key with this digest and its user, unless it is revoked or expired or its user is disabled."""
        statement = (
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(
                ApiKey.key_hash == digest,
                ApiKey.revoked_at.is_(None),
                User.disabled_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()),
            )
        )
        found = (await self.session.execute(statement)).first()
        return (found[0], found[1]) if found is not None else None

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at - LAST_USED_RESOLUTION),
            )
            .values(last_used_at=at)
        )


class ApiKeyService:
    async def create(
        self, session: AsyncSession, user_id: uuid.UUID, *, name: str, expires_in_days: int | None
    ) -> tuple[ApiKey, str]:
        """A new key (the row, and the key itself: the only time it exists outside its owner's hands)."""
        keys = ApiKeyRepository.from_session(session)
        if await keys.count_active(user_id) >= MAX_KEYS_PER_USER:
            raise TooManyApiKeys()
        key = new_key()
        now = datetime.now(UTC)
        expires_at = now + timedelta(days=expires_in_days) if expires_in_days else None
        row = await keys.create(
            ApiKey(
                # The clock, not the transaction's start (now()): keys listed newest first stay in order.
                created_at=now,
                user_id=user_id,
                name=name,
                prefix=key[:DISPLAY_PREFIX_LENGTH],
                key_hash=key_digest(key),
                expires_at=expires_at,
            )
        )
        log.info("auth.api_key_created", api_key_id=str(row.id))
        return row, key

    async def list(self, session: AsyncSession, user_id: uuid.UUID) -> Sequence[ApiKey]:
        return await ApiKeyRepository.from_session(session).list_active(user_id)

    async def revoke(self, session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
        if not await ApiKeyRepository.from_session(session).revoke(user_id, key_id):
            raise ApiKeyNotFound()
        log.info("auth.api_key_revoked", api_key_id=str(key_id))

    async def authenticate(self, session: AsyncSession, key: str) -> User:
        """The user of a usable key; Unauthorized for an unknown, revoked or expired one (one message)."""
        keys = ApiKeyRepository.from_session(session)
        found = await keys.usable(key_digest(key))
        if found is None:
            raise Unauthorized("Invalid, revoked or expired API key")
        row, user = found
        now = datetime.now(UTC)
        if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
            await keys.touch(row.id, now)
        structlog.contextvars.bind_contextvars(api_key_id=str(row.id))
        return user


api_keys = ApiKeyService()
