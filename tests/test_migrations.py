"""The real Alembic chain, up and down, on a database of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import text

from agentserver.kit import migrations
from agentserver.kit.db import create_engine

OUR_TABLES = {
    "users",
    "chat_sessions",
    "messages",
    "refresh_tokens",
    "runs",
    "run_events",
    "jobs",
    "api_keys",
    "chat_bindings",
    "usage_counters",
    "user_quotas",
    "assistants",
    "files",
    "file_chunks",
    "file_chunk_vectors_minilm",
    "file_chunk_vectors_use",
}


async def _inspect(url: str) -> tuple[set[str], set[str], set[str]]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            tables = set(
                (await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
                .scalars()
                .all()
            )
            indexes = set(
                (await conn.execute(text("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")))
                .scalars()
                .all()
            )
            extensions = set((await conn.execute(text("SELECT extname FROM pg_extension"))).scalars().all())
    finally:
        await engine.dispose()
    return tables, indexes, extensions


class TestMigrations:
    async def test_upgrade_creates_the_schema_with_the_guide_indexes(self, make_database: Callable[[str], str]) -> None:
        url = make_database("agentserver_migrations_up")

        await asyncio.to_thread(migrations.upgrade, url)

        tables, indexes, extensions = await _inspect(url)
        assert OUR_TABLES | {"alembic_version"} == tables
        assert "vector" in extensions
        assert (
            "CREATE INDEX ix_messages_session_id_created_at ON public.messages "
            "USING btree (session_id, created_at)" in indexes
        )
        assert (
            "CREATE INDEX ix_chat_sessions_user_id_updated_at ON public.chat_sessions "
            "USING btree (user_id, updated_at DESC)" in indexes
        )

    async def test_downgrade_to_base_and_up_again(self, make_database: Callable[[str], str]) -> None:
        url = make_database("agentserver_migrations_down")
        await asyncio.to_thread(migrations.upgrade, url)

        await asyncio.to_thread(migrations.downgrade, url, "base")
        tables_after_down, _, _ = await _inspect(url)
        await asyncio.to_thread(migrations.upgrade, url)
        tables_after_up, _, _ = await _inspect(url)

        assert tables_after_down == {"alembic_version"}
        assert OUR_TABLES <= tables_after_up

    async def test_deleting_a_user_cascades_to_sessions_and_messages(self, make_database: Callable[[str], str]) -> None:
        url = make_database("agentserver_migrations_cascade")
        await asyncio.to_thread(migrations.upgrade, url)
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO users (id, email, password_hash) "
                        "VALUES ('00000000-0000-0000-0000-000000000001', 'a@example.com', 'x')"
                    )
                )
                await conn.execute(
                    text(
                        "INSERT INTO chat_sessions (id, user_id, name) VALUES "
                        "('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 's')"
                    )
                )
                await conn.execute(
                    text(
                        "INSERT INTO messages (id, session_id, role, content) VALUES "
                        "('00000000-0000-0000-0000-000000000003', "
                        "'00000000-0000-0000-0000-000000000002', 'user', 'hi')"
                    )
                )
                await conn.execute(text("DELETE FROM users"))
                left = (
                    await conn.execute(
                        text("SELECT (SELECT count(*) FROM chat_sessions) + (SELECT count(*) FROM messages)")
                    )
                ).scalar_one()
        finally:
            await engine.dispose()

        assert left == 0
