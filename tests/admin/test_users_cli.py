"""`agentserver users list | set-role | set-quota | disable | enable` on a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from agentserver import cli
from agentserver.config import get_settings
from agentserver.kit import migrations
from agentserver.kit.db import libpq_url


@pytest.fixture(scope="module")
def cli_database(make_database: Callable[[str], str]) -> str:
    url = make_database("agentserver_users_cli")
    migrations.upgrade(url)
    return url


@pytest.fixture
def users_cli(cli_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("DATABASE_URL", cli_database)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli.app, ["users", *args])

    yield run
    get_settings.cache_clear()


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def new_user(url: str) -> tuple[uuid.UUID, str]:
    user_id, email = uuid.uuid4(), f"cli-{uuid.uuid4().hex[:10]}@example.com"
    query(url, "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, 'x')", user_id, email)
    query(
        url,
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) "
        "VALUES (%s, %s, %s, %s, now() + interval '1 day')",
        uuid.uuid4(),
        user_id,
        uuid.uuid4(),
        uuid.uuid4().hex,
    )
    return user_id, email


class TestUsersCli:
    def test_set_role_makes_an_admin(self, users_cli: Callable[..., Any], cli_database: str) -> None:
        user_id, email = new_user(cli_database)

        result = users_cli("set-role", email.upper(), "admin")

        assert result.exit_code == 0, result.output
        assert query(cli_database, "SELECT role FROM users WHERE id = %s", user_id) == [("admin",)]

    def test_disable_stops_logins_and_revokes_refresh_tokens(
        self, users_cli: Callable[..., Any], cli_database: str
    ) -> None:
        user_id, email = new_user(cli_database)

        result = users_cli("disable", email)

        assert result.exit_code == 0, result.output
        assert query(cli_database, "SELECT disabled_at IS NOT NULL FROM users WHERE id = %s", user_id) == [(True,)]
        assert query(
            cli_database, "SELECT count(*) FROM refresh_tokens WHERE user_id = %s AND revoked_at IS NULL", user_id
        ) == [(0,)]

    def test_enable_undoes_disable(self, users_cli: Callable[..., Any], cli_database: str) -> None:
        user_id, email = new_user(cli_database)
        users_cli("disable", email)

        result = users_cli("enable", email)

        assert result.exit_code == 0, result.output
        assert query(cli_database, "SELECT disabled_at FROM users WHERE id = %s", user_id) == [(None,)]

    def test_set_quota_changes_only_the_given_budgets(self, users_cli: Callable[..., Any], cli_database: str) -> None:
        user_id, email = new_user(cli_database)
        users_cli("set-quota", email, "--daily-tokens", "1000", "--monthly-cost", "5")

        result = users_cli("set-quota", email, "--daily-tokens", "default")

        assert result.exit_code == 0, result.output
        assert query(
            cli_database,
            "SELECT daily_tokens, monthly_tokens, daily_cost_usd, monthly_cost_usd::text FROM user_quotas "
            "WHERE user_id = %s",
            user_id,
        ) == [(None, None, None, "5.000000")]

    def test_a_bad_budget_is_a_usage_error(self, users_cli: Callable[..., Any], cli_database: str) -> None:
        _, email = new_user(cli_database)

        result = users_cli("set-quota", email, "--daily-tokens", "-3")

        assert result.exit_code == 2

    def test_list_shows_id_email_role_and_state(self, users_cli: Callable[..., Any], cli_database: str) -> None:
        user_id, email = new_user(cli_database)
        users_cli("disable", email)

        result = users_cli("list", "--limit", "100000")

        line = next(line for line in result.output.splitlines() if email in line)
        assert line.startswith(f"{user_id}  {email}  user  disabled ")

    def test_an_unknown_email_is_one_line_and_exit_1(self, users_cli: Callable[..., Any]) -> None:
        result = users_cli("disable", "nobody@example.com")

        assert result.exit_code == 1
        assert "no user with this email" in result.output
