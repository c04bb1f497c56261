"""Documents tests: the real app (worker, fake model) on a database and a data directory of their own.

Uploads, ingestion jobs and runs commit for real (jobs and runs execute in the app's worker), so every
test makes its own users; `settle()` waits for the jobs and runs a test started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentserver.config import Settings
from agentserver.models import StoredFile
from tests.chat.conftest import ChatHarness, start_harness
from tests.harness import drain_jobs

MAX_UPLOAD = 256 * 1024
QUOTA = 4 * 1024 * 1024


class DocumentsHarness(ChatHarness):
    @property
    def files_dir(self) -> Path:
        return self.settings.data_dir / "files"

    async def settle(self, *, within: float = 30.0) -> None:
        await drain_jobs(self.state["sessionmaker"], within=within)
        await super().settle(within=within)

    async def upload(
        self, headers: dict[str, str], name: str, content: bytes, *, session_id: str | None = None
    ) -> httpx.Response:
        data = {"session_id": session_id} if session_id else None
        async with self.client() as http:
            return await http.post("/api/v1/files", files={"file": (name, content)}, data=data, headers=headers)

    async def raw_upload(self, headers: dict[str, str], filename: bytes, content: bytes) -> httpx.Response:
        """A multipart body built by hand: the file name's bytes go as they are (httpx would escape some)."""
        boundary = b"rawboundary7f3a"
        body = (
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n--" + boundary + b"--\r\n"
        )
        content_type = "multipart/form-data; boundary=" + boundary.decode()
        async with self.client() as http:
            return await http.post("/api/v1/files", content=body, headers={**headers, "Content-Type": content_type})

    async def uploaded(self, headers: dict[str, str], name: str, content: bytes, **options: Any) -> dict[str, Any]:
        """Upload, wait for ingestion, and return the file as GET answers it."""
        response = await self.upload(headers, name, content, **options)
        assert response.status_code == 201, response.text
        await self.settle()
        async with self.client() as http:
            got = await http.get(f"/api/v1/files/{response.json()['id']}", headers=headers)
        assert got.status_code == 200
        body: dict[str, Any] = got.json()
        return body

    async def stored(self, file_id: str) -> StoredFile | None:
        async with self.state["sessionmaker"]() as session:
            stored: StoredFile | None = await session.get(StoredFile, file_id)
            return stored


@pytest.fixture(scope="package")
async def documents_settings(
    own_database_settings: Callable[..., Awaitable[Settings]], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return await own_database_settings(
        "agentserver_documents",
        agentserver_data_dir=tmp_path_factory.mktemp("documents-data"),
        max_upload_bytes=MAX_UPLOAD,
        max_files_bytes_per_user=QUOTA,
        search_provider="none",
        documents_chunk_tokens=64,
        documents_chunk_overlap_tokens=16,
        documents_max_chunks=100,
    )


@pytest.fixture(scope="package")
async def docs(documents_settings: Settings) -> AsyncIterator[DocumentsHarness]:
    harness, lifespan = await start_harness(documents_settings)
    yield DocumentsHarness(harness.app, harness.state, harness.asgi, harness.settings)
    await lifespan.__aexit__(None, None, None)
