"""SQL for files and their chunks. Every read is scoped to the owner: another user's file is not found."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.kit.pagination import keyset_page
from agentserver.models import FileChunk, FileChunkVectorMiniLM, FileChunkVectorUSE, FileStatus, StoredFile, User


class FileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> FileRepository:
        return cls(session)

    @staticmethod
    def owned_statement(user_id: uuid.UUID) -> Select[StoredFile]:
        return select(StoredFile).where(StoredFile.user_id == user_id)

    async def get_owned(self, user_id: uuid.UUID, file_id: uuid.UUID) -> StoredFile | None:
        statement = self.owned_statement(user_id).where(StoredFile.id == file_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_owned(self, user_id: uuid.UUID, *, cursor: str | None, limit: int) -> Sequence[StoredFile]:
        statement = keyset_page(
            self.owned_statement(user_id), StoredFile.created_at, StoredFile.id, cursor=cursor, limit=limit
        )
        return (await self.session.execute(statement)).scalars().all()

    async def lock_owner(self, user_id: uuid.UUID) -> bool:
        """Serialise a user's uploads (the quota check and the insert) until the transaction ends."""
        statement = select(User.id).where(User.id == user_id).with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def used_bytes(self, user_id: uuid.UUID) -> int:
        statement = select(func.coalesce(func.sum(StoredFile.size_bytes), 0)).where(StoredFile.user_id == user_id)
        return int((await self.session.execute(statement)).scalar_one())

    async def add(self, stored: StoredFile) -> StoredFile:
        self.session.add(stored)
        await self.session.flush()
        await self.session.refresh(stored, ["created_at", "updated_at"])
        return stored

    async def delete(self, stored: StoredFile) -> None:
        # Chunks and vectors go by cascade; the blob by the purge job enqueued beside this.
        await self.session.execute(
            delete(StoredFile).where(StoredFile.id == stored.id, StoredFile.user_id == stored.user_id)
        )
        self.session.expunge(stored)

    async def keys_of_session(self, session_id: uuid.UUID) -> list[str]:
        statement = select(StoredFile.storage_key).where(StoredFile.session_id == session_id)
        return list((await self.session.execute(statement)).scalars().all())

    # --- ingestion ------------------------------------------------------------------------------------
    async def lock_for_ingestion(self, file_id: uuid.UUID) -> StoredFile | None:
        statement = select(StoredFile).where(StoredFile.id == file_id).with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def set_status(
        self,
        file_id: uuid.UUID,
        status: FileStatus,
        *,
        reason: str | None = None,
        unfinished_only: bool = False,
        **values: Any,
    ) -> None:
        """`unfinished_only`: leave a file that is already ready or failed as it is."""
        statement = update(StoredFile).where(StoredFile.id == file_id)
        if unfinished_only:
            statement = statement.where(StoredFile.status.in_((FileStatus.pending, FileStatus.processing)))
        await self.session.execute(statement.values(status=status, reason=reason, **values))

    async def replace_chunks(
        self,
        stored: StoredFile,
        chunks: Sequence[dict[str, Any]],
        vectors: Sequence[Sequence[float]],
        table: type[FileChunkVectorMiniLM] | type[FileChunkVectorUSE],
    ) -> None:
        """The file's chunks and their vectors in the embedder's `table`, replacing what an earlier
        (interrupted) attempt wrote."""
        await self.session.execute(delete(FileChunk).where(FileChunk.file_id == stored.id))
        if not chunks:
            return
        rows = [{"file_id": stored.id, "user_id": stored.user_id, "ordinal": i, **c} for i, c in enumerate(chunks)]
        ids = (
            await self.session.scalars(insert(FileChunk).returning(FileChunk.id, sort_by_parameter_order=True), rows)
        ).all()
        await self.session.execute(
            insert(table),
            [
                {"chunk_id": chunk_id, "user_id": stored.user_id, "embedding": list(vector)}
                for chunk_id, vector in zip(ids, vectors, strict=True)
            ],
        )
