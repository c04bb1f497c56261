"""Retrieval: hybrid search scoped to the caller, `search_documents` in a chat turn, ingestion after a
worker died."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import SystemMessage, ToolMessage

from agentserver.documents.jobs import GAVE_UP
from agentserver.documents.search import DocumentSearch, full_text_query, fuse
from agentserver.documents.service import INGEST_JOB
from agentserver.documents.storage import storage_key
from agentserver.documents.tool import files_section
from agentserver.llm.fake import tool_call_turn
from agentserver.models import FileStatus, Job, JobStatus, StoredFile
from tests.documents.conftest import DocumentsHarness

HANDBOOK = (
    "Vacation policy. Every employee receives 25 days of paid vacation per year.\n\n"
    "Remote work. Employees may work remotely on Mondays and Fridays.\n\n"
    "Expenses. Travel expenses are reimbursed within 30 days of the trip."
)
KOREAN = (
    "휴가 규정. 모든 직원은 매년 25일의 유급 휴가를 받습니다.\n\n"
    "재택 근무. 직원은 월요일과 금요일에 재택 근무를 할 수 있습니다."
)


async def _user_id(docs: DocumentsHarness, headers: dict[str, str]) -> uuid.UUID:
    async with docs.client() as http:
        me = await http.get("/api/v1/auth/me", headers=headers)
    return uuid.UUID(me.json()["id"])


def _search(docs: DocumentsHarness) -> DocumentSearch:
    return DocumentSearch(docs.state["sessionmaker"], docs.state["documents"])


class TestHybridSearch:
    async def test_the_matching_passage_comes_first_with_its_citation(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        await docs.uploaded(headers, "handbook.txt", HANDBOOK.encode())
        await docs.uploaded(headers, "recipes.md", b"# Soup\nBoil the vegetables for twenty minutes.")

        passages = await _search(docs).search(
            await _user_id(docs, headers), uuid.uuid4(), "How many vacation days do employees get?"
        )

        assert passages[0].file_name == "handbook.txt"
        assert "25 days of paid vacation" in passages[0].content
        assert passages[0].citation == "handbook.txt"

    async def test_korean_text_is_found_by_words_with_particles(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        await docs.uploaded(headers, "규정.txt", KOREAN.encode())
        await docs.uploaded(headers, "other.txt", b"Unrelated notes about gardening and tomatoes.")

        passages = await _search(docs).search(await _user_id(docs, headers), uuid.uuid4(), "휴가는 며칠인가요?")

        assert passages[0].file_name == "규정.txt"
        assert "25일의 유급 휴가" in passages[0].content

    async def test_pdf_passages_cite_their_page(self, docs: DocumentsHarness) -> None:
        from tests.documents import samples  # noqa: PLC0415 - only this test builds a PDF

        headers = await docs.new_user()
        content = samples.pdf([["Introduction to the manual."], ["The warranty lasts three years."]])
        await docs.uploaded(headers, "manual.pdf", content)

        passages = await _search(docs).search(await _user_id(docs, headers), uuid.uuid4(), "warranty")

        assert passages[0].citation == "manual.pdf, page 2"

    async def test_only_the_callers_files_are_searched(self, docs: DocumentsHarness) -> None:
        owner, other = await docs.new_user(), await docs.new_user()
        await docs.uploaded(owner, "handbook.txt", HANDBOOK.encode())

        passages = await _search(docs).search(await _user_id(docs, other), uuid.uuid4(), "vacation days")

        assert passages == []

    async def test_a_file_attached_to_a_session_is_seen_only_there(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        here, elsewhere = await docs.new_session(headers), await docs.new_session(headers)
        await docs.uploaded(headers, "handbook.txt", HANDBOOK.encode(), session_id=here)
        user_id = await _user_id(docs, headers)

        seen_here = await _search(docs).search(user_id, uuid.UUID(here), "vacation days")
        seen_elsewhere = await _search(docs).search(user_id, uuid.UUID(elsewhere), "vacation days")

        assert [p.file_name for p in seen_here][:1] == ["handbook.txt"]
        assert seen_elsewhere == []

    def test_full_text_queries_are_words_only(self) -> None:
        assert full_text_query("vacation & days' !:* (x)") == "'vacation':* | 'days':*"
        assert full_text_query("휴가는 며칠") == "'휴가는':* | '휴가':* | '며칠':*"
        assert full_text_query("!!! ?") == ""

    def test_reciprocal_rank_fusion_rewards_agreement(self) -> None:
        scores = fuse([[1, 2, 3], [3, 4]])

        assert sorted(scores, key=lambda c: -scores[c]) == [3, 1, 2, 4]
        assert scores[3] == 1 / 63 + 1 / 61


class TestSearchDocumentsTool:
    async def test_a_question_is_answered_from_the_file_with_a_citation(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        session_id = await docs.new_session(headers)
        await docs.uploaded(headers, "handbook.txt", HANDBOOK.encode())
        answer = "Every employee gets 25 days of paid vacation per year (handbook.txt)."
        docs.fake.set_script([tool_call_turn("search_documents", {"query": "vacation days per year"}), answer])

        async with docs.client() as http:
            response = await http.post(
                "/api/v1/chatbot/chat",
                json={"session_id": session_id, "message": "How many vacation days do I get?"},
                headers=headers,
            )
        await docs.settle()

        assert response.status_code == 200, response.text
        assert response.json()["message"] == answer
        first, second = docs.fake.prompts
        context = [m.content for m in first if isinstance(m, SystemMessage)][-1]
        assert "# The user's files (search them with `search_documents`; cite file name and page)" in context
        assert "- handbook.txt" in context
        assert "search_documents" in docs.fake.calls[0].tools
        tool_results = [m for m in second if isinstance(m, ToolMessage)]
        assert [m.name for m in tool_results] == ["search_documents"]
        assert "[1] handbook.txt\n" in str(tool_results[0].content)
        assert "25 days of paid vacation" in str(tool_results[0].content)

    async def test_identity_comes_from_the_run_not_the_arguments(self, docs: DocumentsHarness) -> None:
        owner, other = await docs.new_user(), await docs.new_user()
        await docs.uploaded(owner, "handbook.txt", HANDBOOK.encode())
        owner_id = await _user_id(docs, owner)
        session_id = await docs.new_session(other)
        docs.fake.set_script(
            [tool_call_turn("search_documents", {"query": "vacation", "user_id": str(owner_id)}), "Nothing found."]
        )

        async with docs.client() as http:
            await http.post(
                "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "vacation?"}, headers=other
            )
        await docs.settle()

        tool_results = [m for m in docs.fake.prompts[1] if isinstance(m, ToolMessage)]
        assert "handbook.txt" not in str(tool_results[0].content)
        assert "No passage of the user's files matches" in str(tool_results[0].content)

    async def test_a_session_without_files_keeps_its_prompt(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        session_id = await docs.new_session(headers)
        docs.fake.set_script(["Hello."])

        async with docs.client() as http:
            await http.post("/api/v1/chatbot/chat", json={"session_id": session_id, "message": "hi"}, headers=headers)
        await docs.settle()

        system = " ".join(str(m.content) for m in docs.fake.prompts[0] if isinstance(m, SystemMessage))
        assert "The user's files" not in system
        assert "search_documents" not in docs.fake.calls[0].tools  # offered only with files


async def _file_held_by_a_dead_worker(docs: DocumentsHarness, headers: dict[str, str], *, attempts: int) -> uuid.UUID:
    """A worker died mid-ingestion (attempt `attempts` of 3): its job still says running, its file processing."""
    user_id = await _user_id(docs, headers)
    file_id = uuid.uuid4()
    key = storage_key(user_id, file_id)
    blob = docs.files_dir / key
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(HANDBOOK.encode())
    async with docs.state["sessionmaker"]() as session, session.begin():
        session.add(
            StoredFile(
                id=file_id,
                user_id=user_id,
                name="handbook.txt",
                kind="txt",
                media_type="text/plain; charset=utf-8",
                size_bytes=len(HANDBOOK.encode()),
                sha256="0" * 64,
                storage_key=key,
                status=FileStatus.processing,
                chunk_count=0,
            )
        )
        await session.flush()
        session.add(
            Job(
                kind=INGEST_JOB,
                user_id=user_id,
                payload={"file_id": str(file_id)},
                status=JobStatus.running,
                attempts=attempts,
                max_attempts=3,
                worker_id="dead-worker:1:abc",
                heartbeat_at=datetime.now(UTC) - timedelta(minutes=5),
            )
        )
    return file_id


class TestIngestionSurvivesAWorkerRestart:
    async def test_a_job_held_by_a_dead_worker_is_taken_over_and_finished(self, docs: DocumentsHarness) -> None:
        """Another worker's reaper hands the job back once the heartbeats stopped, and the file ends ready."""
        headers = await docs.new_user()
        file_id = await _file_held_by_a_dead_worker(docs, headers, attempts=1)

        await docs.settle()

        async with docs.client() as http:
            file = (await http.get(f"/api/v1/files/{file_id}", headers=headers)).json()
        assert (file["status"], file["reason"]) == ("ready", None)
        assert file["chunk_count"] >= 1

    async def test_a_dead_workers_last_attempt_fails_the_file_with_a_reason(self, docs: DocumentsHarness) -> None:
        """Its attempts used up, the reaper fails the job for good: the file says so instead of staying
        `processing` for ever."""
        headers = await docs.new_user()
        file_id = await _file_held_by_a_dead_worker(docs, headers, attempts=3)

        await docs.settle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        async with docs.client() as http:
            while True:  # the hook runs right after the reaper's statement
                file = (await http.get(f"/api/v1/files/{file_id}", headers=headers)).json()
                if file["status"] not in ("pending", "processing") or loop.time() > deadline:
                    break
                await asyncio.sleep(0.05)
        assert (file["status"], file["reason"]) == ("failed", GAVE_UP)


class TestFilesSection:
    def test_lists_names_with_their_state(self) -> None:
        rows: list[dict[str, Any]] = [
            {"name": "manual.pdf", "status": "ready", "pages": 12},
            {"name": "notes.txt", "status": "ready", "pages": None},
            {"name": "new.docx", "status": "processing", "pages": None},
            {"name": "scan.pdf", "status": "failed", "pages": None},
        ]

        assert files_section(rows) == (
            "- manual.pdf (12 pages)\n- notes.txt\n- new.docx (not searchable yet)\n- scan.pdf (unreadable)"
        )

    def test_an_image_is_listed_as_one_the_agent_cannot_see(self) -> None:
        rows: list[dict[str, Any]] = [{"name": "receipt.png", "status": "ready", "pages": None, "kind": "png"}]

        assert files_section(rows) == "- receipt.png (an image: you cannot see images, say so if asked about it)"

    def test_is_bounded(self) -> None:
        rows = [{"name": f"{'x' * 100}{n}.txt", "status": "ready", "pages": None} for n in range(25)]

        lines = files_section(rows).splitlines()

        assert len(lines) == 21
        assert lines[-1] == "- … and more"
        assert all(len(line) <= 82 for line in lines)

    def test_no_files_no_section(self) -> None:
        assert files_section([]) == ""
