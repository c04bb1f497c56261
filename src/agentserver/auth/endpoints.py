"""`/api/v1/auth`: register, login (OAuth2 password form), refresh, logout, me, delete me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Response, status

from agentserver.auth.dependencies import CurrentUser, PasswordHasherDep, SettingsDep, UserDeletionHooksDep
from agentserver.auth.errors import EmailAlreadyRegistered, InvalidCredentials, InvalidRefreshToken
from agentserver.auth.schemas import EMAIL_MAX_LENGTH, RefreshRequest, RegisterRequest, TokenPair, UserRead
from agentserver.auth.service import IssuedPair
from agentserver.auth.service import auth as auth_service
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import ErrorBody, TooManyRequests, Unauthorized
from agentserver.ratelimit import rate_limit_login, rate_limit_register

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

# Generous bounds for the login form: anything inside them that is wrong is the same 401; the password
# policy (8..128) applies at registration.
LOGIN_PASSWORD_MAX_LENGTH = 1024


def _token_pair(pair: IssuedPair) -> TokenPair:
    return TokenPair(access_token=pair.access_token, expires_at=pair.expires_at, refresh_token=pair.refresh_token)


@router.post(
    "/register",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    responses={409: EmailAlreadyRegistered.schema(), 429: TooManyRequests.schema()},
    dependencies=[Depends(rate_limit_register)],  # per client IP and per email
)
async def register(body: RegisterRequest, session: SessionDep, hasher: PasswordHasherDep) -> UserRead:
    user = await auth_service.register(session, hasher, email=body.email, password=body.password)
    return UserRead.model_validate(user)


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Log in with email and password (OAuth2 password flow)",
    responses={401: InvalidCredentials.schema(), 429: TooManyRequests.schema()},
    dependencies=[Depends(rate_limit_login)],  # per client IP and per account (the `username` field)
)
async def login(
    username: Annotated[str, Form(max_length=EMAIL_MAX_LENGTH, description="The account's email")],
    password: Annotated[str, Form(max_length=LOGIN_PASSWORD_MAX_LENGTH)],
    session: SessionDep,
    hasher: PasswordHasherDep,
    settings: SettingsDep,
) -> TokenPair:
    pair = await auth_service.login(session, hasher, settings, email=username, password=password)
    return _token_pair(pair)


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Exchange a refresh token for a new token pair (the old one is spent)",
    responses={401: InvalidRefreshToken.schema()},
)
async def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    pair = await auth_service.refresh(session, settings, body.refresh_token)
    return _token_pair(pair)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of the caller's refresh tokens (and the rest of its login)",
    responses={
        401: {
            "model": ErrorBody,
            "description": "Missing or invalid access token, or a refresh token that is not the caller's",
        }
    },
)
async def logout(body: RefreshRequest, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> Response:
    await auth_service.logout(session, settings, user, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserRead, summary="The current user", responses={401: Unauthorized.schema()})
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the current user and everything they own",
    responses={401: Unauthorized.schema()},
)
async def delete_me(user: CurrentUser, session: SessionDep, hooks: UserDeletionHooksDep) -> Response:
    await auth_service.delete_user(session, user, on_delete=hooks)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
