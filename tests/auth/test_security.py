"""auth.security: JWT claims and validation, refresh-token digests, the hashing-cost guard."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from agentserver.auth.security import InvalidToken, TokenType, decode_token, issue_token, token_digest
from agentserver.config import Environment, Settings

SECRET = "a-production-grade-secret-of-sufficient-length-0123456789"


@pytest.fixture
def token_settings() -> Settings:
    return Settings(_env_file=None, jwt_secret_key=SecretStr(SECRET))


class TestIssueAndDecode:
    def test_round_trip(self, token_settings: Settings) -> None:
        user_id = uuid.uuid4()
        now = datetime.now(UTC)

        issued = issue_token(token_settings, user_id, TokenType.access, now=now)
        claims = decode_token(token_settings, issued.token, TokenType.access)

        assert (claims.subject, claims.jti, claims.type) == (user_id, issued.jti, TokenType.access)
        assert claims.expires_at == issued.expires_at
        assert claims.expires_at == (now + timedelta(minutes=30)).replace(microsecond=0)

    def test_refresh_tokens_live_for_the_configured_days(self, token_settings: Settings) -> None:
        now = datetime.now(UTC)

        issued = issue_token(token_settings, uuid.uuid4(), TokenType.refresh, now=now)

        assert issued.expires_at == (now + timedelta(days=7)).replace(microsecond=0)

    def test_wrong_type_is_invalid(self, token_settings: Settings) -> None:
        issued = issue_token(token_settings, uuid.uuid4(), TokenType.refresh)

        with pytest.raises(InvalidToken, match="wrong token type"):
            decode_token(token_settings, issued.token, TokenType.access)

    def test_another_secret_is_invalid(self, token_settings: Settings) -> None:
        issued = issue_token(token_settings, uuid.uuid4(), TokenType.access)
        other = Settings(_env_file=None, jwt_secret_key=SecretStr(SECRET + "-rotated"))

        with pytest.raises(InvalidToken):
            decode_token(other, issued.token, TokenType.access)

    def test_a_changed_payload_is_invalid(self, token_settings: Settings) -> None:
        header, payload, signature = issue_token(token_settings, uuid.uuid4(), TokenType.access).token.split(".")

        with pytest.raises(InvalidToken):
            decode_token(token_settings, f"{header}.{payload[:-2]}AA.{signature}", TokenType.access)


class TestTokenDigest:
    def test_is_the_sha256_hex_of_the_token(self) -> None:
        assert token_digest("some.jwt.value") == "7072927228bcfdef2cf9a79910a8b0b7ff472b8ebc21df69841eb71a07134c7e"

    def test_is_stable(self) -> None:
        assert token_digest("t") == token_digest("t")


class TestHashingCostGuard:
    def test_production_refuses_a_cheap_hash(self) -> None:
        with pytest.raises(ValidationError, match="PASSWORD_HASH_MEMORY_KIB must be at least 19456"):
            Settings(
                _env_file=None,
                environment=Environment.production,
                jwt_secret_key=SecretStr(SECRET),
                database_url="postgresql://db/agent",
                cors_origins=["https://chat.example"],
                password_hash_memory_kib=1024,
            )

    def test_the_default_cost_is_strong(self) -> None:
        settings = Settings(_env_file=None)

        assert (settings.password_hash_time_cost, settings.password_hash_memory_kib) == (3, 65_536)
