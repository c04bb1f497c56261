"""Users and tokens: register, login, refresh (rotation + reuse detection), logout, delete.

Services are stateless; the session is always the first argument and nothing here commits, with one
documented exception (a detected refresh-token reuse, see `AuthService.refresh`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.auth.api_keys import api_keys, is_api_key
from agentserver.auth.errors import AccountDisabled, EmailAlreadyRegistered, InvalidCredentials, InvalidRefreshToken
from agentserver.auth.repository import RefreshTokenRepository, UserRepository
from agentserver.auth.schemas import normalize_email
from agentserver.auth.security import (
    InvalidToken,
    PasswordHasher,
    TokenClaims,
    TokenType,
    decode_token,
    issue_token,
    token_digest,
)
from agentserver.config import Settings
from agentserver.kit.errors import Unauthorized
from agentserver.models import User
from agentserver.sessions.repository import ChatSessionRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IssuedPair:
    access_token: str
    expires_at: datetime
    refresh_token: str


@dataclass(frozen=True, slots=True)
class UserDeletion:
    """What a deletion hook gets: the user being erased and the ids of the chat sessions they owned.

    `db` is the request's session, inside the transaction that deletes the user's rows.
    """

    db: AsyncSession
    user_id: uuid.UUID
    session_ids: Sequence[uuid.UUID]


# Erases what the database cascade cannot reach (LangGraph checkpoints keyed by session id, mem0 memories
# keyed by user id) and stops the user's runs. Hooks run inside the deletion's transaction, before the
# user's rows are deleted: a failing hook rolls the whole deletion back and the client can simply retry.
UserDeletionHook = Callable[[UserDeletion], Awaitable[None]]


class AuthService:
    async def register(self, session: AsyncSession, hasher: PasswordHasher, *, email: str, password: str) -> User:
        users = UserRepository.from_session(session)
        email = normalize_email(email)
        if await users.get_by_email(email) is not None:
            raise EmailAlreadyRegistered()
        password_hash = await hasher.hash(password)
        try:
            # A savepoint, so a concurrent registration that wins the race leaves the session usable.
            async with session.begin_nested():
                user = await users.create(email=email, password_hash=password_hash)
        except IntegrityError as exc:
            raise EmailAlreadyRegistered() from exc
        log.info("auth.registered", user_id=str(user.id))
        return user

    async def authenticate(self, session: AsyncSession, hasher: PasswordHasher, *, email: str, password: str) -> User:
        """The user for these credentials, or InvalidCredentials; same work whether or not the email exists."""
        users = UserRepository.from_session(session)
        email = normalize_email(email)
        # PostgreSQL text cannot hold NUL, so no account has one: answer like an unknown email (no query).
        user = None if "\x00" in email else await users.get_by_email(email)
        if user is None:
            await hasher.verify_dummy(password)
            log.info("auth.login_failed", reason="unknown_email")
            raise InvalidCredentials()
        matches, new_hash = await hasher.verify(password, user.password_hash)
        if not matches:
            log.info("auth.login_failed", reason="wrong_password", user_id=str(user.id))
            raise InvalidCredentials()
        if user.disabled_at is not None:
            log.info("auth.login_failed", reason="disabled", user_id=str(user.id))
            raise AccountDisabled()
        if new_hash is not None:
            # The hashing parameters were raised since this hash was made: upgrade it while we have the password.
            user.password_hash = new_hash
        return user

    async def login(
        self, session: AsyncSession, hasher: PasswordHasher, settings: Settings, *, email: str, password: str
    ) -> IssuedPair:
        user = await self.authenticate(session, hasher, email=email, password=password)
        pair = await self._issue_pair(session, settings, user.id, family_id=uuid.uuid4())
        log.info("auth.login", user_id=str(user.id))
        return pair

    async def refresh(self, session: AsyncSession, settings: Settings, refresh_token: str) -> IssuedPair:
        """Spend a refresh token and issue the next pair in its family.

        A token presented after it was spent (or revoked) revokes the whole family: either it was stolen
        or the legitimate client lost the race to the thief, and both must log in again.
        """
        claims = self._decode_refresh(settings, refresh_token)
        tokens = RefreshTokenRepository.from_session(session)
        row = await tokens.get_by_hash_for_update(token_digest(refresh_token))
        if row is None or row.id != claims.jti:
            raise InvalidRefreshToken()
        now = datetime.now(UTC)
        if row.used_at is not None or row.revoked_at is not None:
            await tokens.revoke_family(row.family_id, now)
            log.warning("auth.refresh_reuse", user_id=str(row.user_id), family_id=str(row.family_id))
            # The revocation must outlive this request's 401, which would otherwise roll it back.
            await session.commit()
            raise InvalidRefreshToken()
        if row.expires_at <= now:
            raise InvalidRefreshToken()
        await tokens.mark_used(row, now)
        pair = await self._issue_pair(session, settings, row.user_id, family_id=row.family_id)
        log.info("auth.refreshed", user_id=str(row.user_id))
        return pair

    async def logout(self, session: AsyncSession, settings: Settings, user: User, refresh_token: str) -> None:
        """Revoke the token's family (this login on this device). Idempotent for the caller's own tokens;
        another user's refresh token is invalid here, exactly like an unknown one."""
        claims = self._decode_refresh(settings, refresh_token)
        tokens = RefreshTokenRepository.from_session(session)
        row = await tokens.get_owned_by_hash_for_update(user.id, token_digest(refresh_token))
        if row is None or row.id != claims.jti:
            raise InvalidRefreshToken()
        await tokens.revoke_family(row.family_id, datetime.now(UTC))
        log.info("auth.logout", user_id=str(row.user_id))

    async def authenticate_access_token(self, session: AsyncSession, settings: Settings, token: str) -> User:
        """The user an access token belongs to; Unauthorized if the token is bad or the user is gone.

        Used by `get_current_user`, and by transports that cannot use the dependency (WebSocket).
        """
        try:
            claims = decode_token(settings, token, TokenType.access)
        except InvalidToken as exc:
            raise Unauthorized() from exc
        user = await UserRepository.from_session(session).get(claims.subject)
        if user is None or user.disabled_at is not None:
            # Deleted and disabled users' tokens stop working at once, not when they expire.
            raise Unauthorized()
        return user

    async def authenticate_credential(self, session: AsyncSession, settings: Settings, credential: str) -> User:
        """The user of a bearer credential: an API key (`ask_...`) or an access token; Unauthorized otherwise."""
        if is_api_key(credential):
            return await api_keys.authenticate(session, credential)
        return await self.authenticate_access_token(session, settings, credential)

    async def delete_user(
        self, session: AsyncSession, user: User, *, on_delete: Sequence[UserDeletionHook] = ()
    ) -> None:
        """Erase the user and everything they own.

        Rows (sessions, messages, runs, refresh tokens) go by foreign-key cascade; `on_delete` hooks (run
        first) erase what lives outside these tables. See `UserDeletionHook`.
        """
        session_ids = await ChatSessionRepository.from_session(session).list_ids_for_user(user.id)
        user_id = user.id
        deletion = UserDeletion(db=session, user_id=user_id, session_ids=session_ids)
        for hook in on_delete:
            await hook(deletion)
        await UserRepository.from_session(session).delete(user)
        log.info("auth.user_deleted", user_id=str(user_id), sessions=len(session_ids))

    async def _issue_pair(
        self, session: AsyncSession, settings: Settings, user_id: uuid.UUID, *, family_id: uuid.UUID
    ) -> IssuedPair:
        access = issue_token(settings, user_id, TokenType.access)
        refresh = issue_token(settings, user_id, TokenType.refresh)
        await RefreshTokenRepository.from_session(session).create(
            token_id=refresh.jti,
            user_id=user_id,
            family_id=family_id,
            token_hash=token_digest(refresh.token),
            expires_at=refresh.expires_at,
        )
        return IssuedPair(access_token=access.token, expires_at=access.expires_at, refresh_token=refresh.token)

    @staticmethod
    def _decode_refresh(settings: Settings, token: str) -> TokenClaims:
        try:
            return decode_token(settings, token, TokenType.refresh)
        except InvalidToken as exc:
            raise InvalidRefreshToken() from exc


auth = AuthService()
