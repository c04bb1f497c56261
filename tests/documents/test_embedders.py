"""Each embedder writes and searches its own vector table (DOCUMENTS_EMBEDDER=minilm here; `use` is the
default the other tests run on)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from agentserver.documents.jobs import Ingestion
from agentserver.documents.runtime import Documents
from agentserver.documents.search import DocumentSearch
from agentserver.documents.service import INGEST_JOB
from agentserver.documents.storage import storage_key
from agentserver.jobs.repository import ClaimedJob
from agentserver.models import FileChunkVectorMiniLM, FileChunkVectorUSE, FileStatus, StoredFile
from tests.documents.conftest import DocumentsHarness

TEXT = "The warranty of the washing machine lasts three years.\n\nThe cafeteria opens at half past eleven."


async def test_the_minilm_embedder_uses_its_own_table(docs: DocumentsHarness) -> None:
    headers = await docs.new_user()
    async with docs.client() as http:
        user_id = uuid.UUID((await http.get("/api/v1/auth/me", headers=headers)).json()["id"])
    shared: Documents = docs.state["documents"]
    minilm = Documents(
        settings=docs.settings.model_copy(update={"documents_embedder": "minilm"}),
        storage=shared.storage,
        spool_dir=shared.spool_dir,
    )
    file_id = uuid.uuid4()
    key = storage_key(user_id, file_id)
    (docs.files_dir / key).parent.mkdir(parents=True, exist_ok=True)
    (docs.files_dir / key).write_bytes(TEXT.encode())
    # A row without a job: the app's worker leaves it alone, this test ingests it.
    async with docs.state["sessionmaker"]() as session, session.begin():
        session.add(
            StoredFile(
                id=file_id,
                user_id=user_id,
                name="notes.txt",
                kind="txt",
                media_type="text/plain; charset=utf-8",
                size_bytes=len(TEXT.encode()),
                sha256="0" * 64,
                storage_key=key,
                status=FileStatus.pending,
                chunk_count=0,
            )
        )
    job = ClaimedJob(1, INGEST_JOB, user_id, {"file_id": str(file_id)}, 1, 3, datetime.now(UTC))

    await Ingestion(minilm, docs.state["sessionmaker"]).ingest(job)
    passages = await DocumentSearch(docs.state["sessionmaker"], minilm).search(user_id, uuid.uuid4(), "guarantee")

    async with docs.state["sessionmaker"]() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(t).where(t.user_id == user_id))
            for t in (FileChunkVectorMiniLM, FileChunkVectorUSE)
        ]
    assert counts == [1, 0]  # one short chunk, in MiniLM's table only
    assert "warranty" in passages[0].content
