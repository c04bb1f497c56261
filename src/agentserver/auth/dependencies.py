"""Auth dependencies: `CurrentUser` for every protected route, and the app's password hasher.

from agentserver.auth.dependencies import CurrentUser

@router.get("/things")
async def list_things(user: CurrentUser, session: SessionDep) -> ...
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from agentserver.auth.schemas import TOKEN_MAX_LENGTH
from agentserver.auth.security import PasswordHasher
from agentserver.auth.service import UserDeletionHook
from agentserver.auth.service import auth as auth_service
from agentserver.config import Settings
from agentserver.kit.db import ShortSessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.models import User

# auto_error=False: a missing header becomes our Unauthorized (standard body), not FastAPI's HTTPException.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def api_key_header(request: Request) -> str | None:
    """`x-api-key`, how the LangGraph SDK sends an API key (the OpenAI SDKs send `Authorization: Bearer`).

    Read as a plain header rather than declared as an OpenAPI security scheme: schema-driven clients and
    fuzzers then keep to the one scheme (bearer), which accepts API keys too.
    """
    return request.headers.get("x-api-key")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def get_password_hasher(request: Request) -> PasswordHasher:
    """The app's hasher (built in the lifespan). Tests override this dependency to swap it."""
    hasher: PasswordHasher = request.state.password_hasher
    return hasher


async def get_user_deletion_hooks(request: Request) -> list[UserDeletionHook]:
    hooks: list[UserDeletionHook] = request.state.user_deletion_hooks
    return hooks


SettingsDep = Annotated[Settings, Depends(get_settings)]
PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]
UserDeletionHooksDep = Annotated[list[UserDeletionHook], Depends(get_user_deletion_hooks)]


async def get_current_user(
    short_session: ShortSessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> User:
    """The user of the request's bearer access token or API key (`Authorization: Bearer`, or `x-api-key`);
    401 if missing, invalid, expired, revoked or the user is gone.

    The lookup is a short autocommit session of its own (a read, and at most one write: an API key's
    last-used time), over before the endpoint runs: the request's SessionDep would hold its connection
    through a one-shot chat turn's model wait, and a burst of turns would drain the pool. The user comes
    back detached, its columns loaded.
    """
    credential = token or api_key
    if not credential or len(credential) > TOKEN_MAX_LENGTH:
        raise Unauthorized("Not authenticated")
    async with short_session() as session:
        user = await auth_service.authenticate_credential(session, settings, credential)
    # Every log line of the rest of the request carries the user.
    structlog.contextvars.bind_contextvars(user_id=str(user.id))
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
