"""Auth request and response bodies. No response model has a field for the password hash."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field
from pydantic_core import PydanticCustomError

EMAIL_MAX_LENGTH = 320  # RFC 5321: 64 local + @ + 255 domain
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
# JWTs we issue are ~300 characters; anything far longer is not ours and is refused before decoding.
TOKEN_MAX_LENGTH = 2048


def normalize_email(value: str) -> str:
    """Stored and looked up in this form, so `Bob@Example.com ` and `bob@example.com` are one account."""
    return value.strip().lower()


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _password_policy(value: str) -> str:
    # Length in characters, counted as typed: never strip or escape a password.
    if len(value) < PASSWORD_MIN_LENGTH:
        raise PydanticCustomError(
            "password_too_short", "password must be at least {min} characters long", {"min": PASSWORD_MIN_LENGTH}
        )
    if len(value) > PASSWORD_MAX_LENGTH:
        raise PydanticCustomError(
            "password_too_long", "password must be at most {max} characters long", {"max": PASSWORD_MAX_LENGTH}
        )
    if not value.strip():
        raise PydanticCustomError("password_blank", "password must not be only whitespace")
    return value


Email = Annotated[
    EmailStr,
    # Bound the raw length before the email parser sees it, then store the normalised form.
    BeforeValidator(_strip),
    Field(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(normalize_email),
]
Password = Annotated[str, AfterValidator(_password_policy)]
Token = Annotated[str, Field(min_length=1, max_length=TOKEN_MAX_LENGTH)]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password


class RefreshRequest(BaseModel):
    refresh_token: Token


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_at: datetime = Field(description="When the access token expires (UTC)")
    refresh_token: str
