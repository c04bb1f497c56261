"""Where uploaded bytes live, behind a small protocol: the local implementation ships; an S3-compatible one
(put = upload the finished temporary file, read = GET, delete_prefix = list + delete) implements the same
five methods and is selected by FILE_STORAGE.

Keys are made of generated ids only (`<user id>/<file id>`), never of anything a client sent, and the
local store refuses any other shape, so no key can name a path outside its root.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[0-9a-f]{32}/[0-9a-f]{32}$")
_PREFIX = re.compile(r"^[0-9a-f]{32}$")
READ_CHUNK = 256 * 1024


def storage_key(user_id: uuid.UUID, file_id: uuid.UUID) -> str:
    return f"{user_id.hex}/{file_id.hex}"


def user_prefix(user_id: uuid.UUID) -> str:
    return user_id.hex


class FileStorage(Protocol):
    async def put(self, key: str, source: Path) -> None:
        """Store the finished temporary file `source` under `key` (it is moved or uploaded, then gone)."""

    async def read(self, key: str) -> bytes:
        """The whole blob (ingestion reads at most MAX_UPLOAD_BYTES)."""

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The blob in chunks (downloads)."""

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing one is not an error (deletion is retried by jobs)."""

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every blob of one user (account erasure)."""


class LocalFileStorage:
    """Blobs as files under `root` (AGENTSERVER_DATA_DIR/files/<user id>/<file id>)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("invalid storage key")
        return self.root / key

    async def put(self, key: str, source: Path) -> None:
        target = self.path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)

        await asyncio.to_thread(move)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread(self.path(key).open, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk
        finally:
            await asyncio.to_thread(file.close)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    async def delete_prefix(self, prefix: str) -> None:
        if not _PREFIX.match(prefix):
            raise ValueError("invalid storage prefix")
        await asyncio.to_thread(shutil.rmtree, self.root / prefix, ignore_errors=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).is_file)
