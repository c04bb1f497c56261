"""`/api/v1/files`: upload each type, content checks, limits, names, ownership, download, deletion."""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from agentserver.models import FileChunk, FileChunkVectorUSE, FileStatus, StoredFile
from tests.documents import samples
from tests.documents.conftest import MAX_UPLOAD, QUOTA, DocumentsHarness

HANDBOOK = (
    "Vacation policy. Every employee receives 25 days of paid vacation per year.\n\n"
    "Remote work. Employees may work remotely on Mondays and Fridays."
)


class TestUploadEachType:
    async def test_a_text_file_is_ingested_into_chunks_and_vectors(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()

        file = await docs.uploaded(headers, "handbook.txt", HANDBOOK.encode())

        assert file["status"] == "ready"
        assert file["kind"] == "txt"
        assert file["media_type"] == "text/plain; charset=utf-8"
        assert file["size_bytes"] == len(HANDBOOK.encode())
        assert file["reason"] is None
        assert file["chunk_count"] >= 1
        async with docs.state["sessionmaker"]() as session:
            chunks = (await session.scalars(select(FileChunk).where(FileChunk.file_id == file["id"]))).all()
            vectors = await session.scalar(
                select(func.count())
                .select_from(FileChunkVectorUSE)
                .join(FileChunk, FileChunk.id == FileChunkVectorUSE.chunk_id)
                .where(FileChunk.file_id == file["id"])
            )
        assert len(chunks) == file["chunk_count"] == vectors
        assert "25 days of paid vacation" in " ".join(c.content for c in chunks)

    async def test_a_pdf_keeps_its_pages(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        content = samples.pdf([["The first page talks about apples."], ["The second page talks about pears."]])

        file = await docs.uploaded(headers, "fruit.pdf", content)

        assert (file["status"], file["kind"], file["pages"]) == ("ready", "pdf", 2)
        async with docs.state["sessionmaker"]() as session:
            rows = (
                await session.execute(
                    select(FileChunk.page, FileChunk.content)
                    .where(FileChunk.file_id == file["id"])
                    .order_by(FileChunk.ordinal)
                )
            ).all()
        assert [(page, "apples" in text, "pears" in text) for page, text in rows] == [
            (1, True, False),
            (2, False, True),
        ]

    @pytest.mark.parametrize(
        ("name", "content", "kind", "section"),
        [
            ("notes.md", b"# Setup\nInstall the tool.\n\n## Usage\nRun the tool daily.", "md", "Usage"),
            (
                "page.html",
                b"<html><head><script>var hidden = 1;</script></head><body><h1>Usage</h1>"
                b"<p>Run the tool daily.</p></body></html>",
                "html",
                "Usage",
            ),
            ("report.docx", samples.docx([("Heading1", "Usage"), (None, "Run the tool daily.")]), "docx", "Usage"),
        ],
    )
    async def test_structured_text_keeps_its_sections(
        self, docs: DocumentsHarness, name: str, content: bytes, kind: str, section: str
    ) -> None:
        headers = await docs.new_user()

        file = await docs.uploaded(headers, name, content)

        assert (file["status"], file["kind"]) == ("ready", kind)
        async with docs.state["sessionmaker"]() as session:
            rows = (
                await session.execute(
                    select(FileChunk.section, FileChunk.content).where(FileChunk.file_id == file["id"])
                )
            ).all()
        daily = [row for row in rows if "Run the tool daily." in row.content]
        assert [row.section for row in daily] == [section]
        assert all("hidden" not in row.content for row in rows)  # scripts are not text

    @pytest.mark.parametrize(
        ("name", "content", "kind"), [("dot.png", samples.png(), "png"), ("photo.JPG", samples.jpeg(), "jpg")]
    )
    async def test_images_are_stored_only(self, docs: DocumentsHarness, name: str, content: bytes, kind: str) -> None:
        headers = await docs.new_user()

        file = await docs.uploaded(headers, name, content)

        assert (file["status"], file["kind"], file["chunk_count"]) == ("ready", kind, 0)


class TestContentChecks:
    @pytest.mark.parametrize(
        ("name", "content"),
        [
            ("image.pdf", samples.png()),  # a PNG called .pdf
            ("notes.txt", samples.pdf([["text"]])),  # a PDF called .txt
            ("report.docx", b"PK\x03\x04not really a zip"),  # a zip signature, no Word document
            ("photo.jpg", b"just text, not a photo"),
            ("binary.md", b"\x00\x01\x02\x03"),  # NUL bytes are not text
            ("latin1.txt", "café".encode("latin-1")),  # not UTF-8
        ],
    )
    async def test_content_that_does_not_match_the_name_is_415(
        self, docs: DocumentsHarness, name: str, content: bytes
    ) -> None:
        headers = await docs.new_user()

        response = await docs.upload(headers, name, content)

        assert response.status_code == 415
        assert response.json()["error"] == "UnsupportedFileType"
        assert "not a" in response.json()["detail"]

    @pytest.mark.parametrize("name", ["program.exe", "archive.zip", "noextension"])
    async def test_unsupported_types_are_415(self, docs: DocumentsHarness, name: str) -> None:
        headers = await docs.new_user()

        response = await docs.upload(headers, name, b"hello")

        assert response.status_code == 415
        assert "accepted: docx, html, jpg, md, pdf, png, txt" in response.json()["detail"]

    async def test_nothing_is_left_behind_by_a_refused_upload(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()

        await docs.upload(headers, "image.pdf", samples.png())

        assert list((docs.files_dir / ".incoming").iterdir()) == []


class TestLimits:
    async def test_a_file_over_the_limit_is_413(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()

        response = await docs.upload(headers, "big.txt", b"a" * (MAX_UPLOAD + 1))

        assert response.status_code == 413
        assert response.json() == {
            "error": "FileTooLarge",
            "detail": f"file: larger than the {MAX_UPLOAD} bytes an upload may have",
        }

    async def test_a_file_at_the_limit_is_accepted(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()

        image = samples.png()
        # An image (stored, not ingested): the limit is what is tested, not embedding 256 KiB of text.
        response = await docs.upload(headers, "big.png", image + b"\0" * (MAX_UPLOAD - len(image)))

        assert response.status_code == 201, response.text

    async def test_a_streamed_gigabyte_is_refused_early_without_buffering(self, docs: DocumentsHarness) -> None:
        """Chunked (no Content-Length): refused once the file passes the limit, body never held or stored."""
        headers = await docs.new_user()
        boundary = "testboundary"
        sent = 0
        block = b"x" * (64 * 1024)

        async def body() -> AsyncIterator[bytes]:
            nonlocal sent
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n'
                "Content-Type: text/plain\r\n\r\n"
            ).encode()
            yield head
            for _ in range(16 * 1024):  # 1 GiB
                sent += len(block)
                yield block
            yield f"\r\n--{boundary}--\r\n".encode()

        tracemalloc.start()
        try:
            async with docs.client() as http:
                response = await http.post(
                    "/api/v1/files",
                    content=body(),
                    headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert response.status_code == 413
        assert response.json()["error"] == "FileTooLarge"
        assert sent <= MAX_UPLOAD + 2 * len(block)  # read up to the limit, not the gigabyte
        assert peak < 8 * 1024 * 1024
        assert list((docs.files_dir / ".incoming").iterdir()) == []

    async def test_a_declared_gigabyte_is_refused_before_reading(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        read = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal read
            read += 1
            yield b"x"

        async with docs.client() as http:
            response = await http.post(
                "/api/v1/files",
                content=body(),
                headers={
                    **headers,
                    "Content-Type": "multipart/form-data; boundary=b",
                    "Content-Length": str(1024**3),
                },
            )

        assert response.status_code == 413
        assert read == 0

    async def test_an_upload_past_the_quota_is_413_with_a_clear_error(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        first = await docs.upload(headers, "a.txt", b"hello")
        async with docs.state["sessionmaker"]() as session, session.begin():
            stored = await session.get(StoredFile, first.json()["id"])
            assert stored is not None
            stored.size_bytes = QUOTA - 10

        response = await docs.upload(headers, "b.txt", b"more than ten bytes")

        assert response.status_code == 413
        assert response.json() == {
            "error": "StorageQuotaExceeded",
            "detail": f"file: your files use {QUOTA - 10} of {QUOTA} bytes; this upload does not fit. "
            "Delete files to make room.",
        }

    async def test_a_body_without_a_file_is_422(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        async with docs.client() as http:
            missing = await http.post("/api/v1/files", data={"session_id": str(uuid.uuid4())}, headers=headers)
            not_multipart = await http.post("/api/v1/files", json={"file": "x"}, headers=headers)
            extra = await http.post(
                "/api/v1/files", files={"file": ("a.txt", b"a")}, data={"owner": "x"}, headers=headers
            )

        assert (missing.status_code, missing.json()["error"]) == (422, "InvalidUpload")
        assert (not_multipart.status_code, not_multipart.json()["error"]) == (422, "InvalidUpload")
        assert (extra.status_code, extra.json()["detail"]) == (
            422,
            "body: unexpected form field 'owner'; send `file` and `session_id`",
        )


class TestNames:
    @pytest.mark.parametrize(
        ("sent", "shown"),
        [
            ("../../x.pdf", "x.pdf"),
            ("..\\..\\windows\\x.txt", "x.txt"),
            ("보고서 ①.txt", "보고서 ①.txt"),
            ("a\x00b\nc.txt", "abc.txt"),
            ("e\u0301t\u00e9.md", "\u00e9t\u00e9.md"),  # NFC
            ("\u202etxt.exe.md", "txt.exe.md"),  # no bidi override to disguise the type
            ("/etc/passwd.txt", "passwd.txt"),
            (b"\xff\x80.txt", "\ufffd\ufffd.txt"),  # not UTF-8: replaced, never a lone surrogate
            ("....txt", "....txt"),
        ],
    )
    async def test_odd_names_are_stored_safely(self, docs: DocumentsHarness, sent: str | bytes, shown: str) -> None:
        headers = await docs.new_user()
        content = samples.pdf([["Safe."]]) if shown.endswith(".pdf") else b"safe"

        response = await docs.raw_upload(headers, sent if isinstance(sent, bytes) else sent.encode(), content)

        assert response.status_code == 201, response.text
        assert response.json()["name"] == shown
        stored = await docs.stored(response.json()["id"])
        assert stored is not None
        blob = docs.files_dir / stored.storage_key
        assert blob.read_bytes() == content
        assert blob.resolve().is_relative_to(docs.files_dir.resolve())
        assert stored.storage_key == f"{stored.user_id.hex}/{stored.id.hex}"

    async def test_download_names_the_file_with_rfc_5987(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        uploaded = await docs.upload(headers, "보고서 최종;v2%.html", b"<script>alert(1)</script>")

        async with docs.client() as http:
            response = await http.get(f"/api/v1/files/{uploaded.json()['id']}/content", headers=headers)

        assert response.status_code == 200
        assert response.content == b"<script>alert(1)</script>"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"  # never rendered as HTML
        assert response.headers["x-content-type-options"] == "nosniff"
        encoded = quote("보고서 최종;v2%.html", safe="")
        assert response.headers["content-disposition"] == (
            f"attachment; filename=\"___ ___v2_.html\"; filename*=UTF-8''{encoded}"
        )


class TestOwnership:
    async def test_another_users_file_is_404_everywhere(self, docs: DocumentsHarness) -> None:
        owner, other = await docs.new_user(), await docs.new_user()
        file_id = (await docs.upload(owner, "secret.txt", b"owner only")).json()["id"]

        async with docs.client() as http:
            answers = [
                await http.get(f"/api/v1/files/{file_id}", headers=other),
                await http.get(f"/api/v1/files/{file_id}/content", headers=other),
                await http.delete(f"/api/v1/files/{file_id}", headers=other),
            ]
            listed = await http.get("/api/v1/files", headers=other)
            still = await http.get(f"/api/v1/files/{file_id}", headers=owner)

        assert [(a.status_code, a.json()) for a in answers] == [
            (404, {"error": "FileNotFound", "detail": "File not found"})
        ] * 3
        assert listed.json() == {"files": [], "next_cursor": None}
        assert still.status_code == 200

    async def test_without_credentials_is_401(self, docs: DocumentsHarness) -> None:
        async with docs.client() as http:
            response = await http.post("/api/v1/files", files={"file": ("a.txt", b"a")})
        assert response.status_code == 401

    async def test_attaching_to_another_users_session_is_404(self, docs: DocumentsHarness) -> None:
        owner, other = await docs.new_user(), await docs.new_user()
        session_id = await docs.new_session(owner)

        response = await docs.upload(other, "a.txt", b"a", session_id=session_id)
        invalid = await docs.upload(other, "a.txt", b"a", session_id="not-an-id")

        assert (response.status_code, response.json()["error"]) == (404, "SessionNotFound")
        assert (invalid.status_code, invalid.json()["detail"]) == (422, "session_id: not a valid id")
        assert list((docs.files_dir / ".incoming").iterdir()) == []


class TestListing:
    async def test_files_are_listed_newest_first_in_pages(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        ids = [(await docs.upload(headers, f"{n}.txt", b"x")).json()["id"] for n in range(3)]

        async with docs.client() as http:
            first = (await http.get("/api/v1/files", params={"limit": 2}, headers=headers)).json()
            second = (
                await http.get("/api/v1/files", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers)
            ).json()

        assert [f["id"] for f in first["files"]] == ids[::-1][:2]
        assert [f["id"] for f in second["files"]] == ids[::-1][2:]
        assert second["next_cursor"] is None


class TestDeletion:
    async def test_deleting_a_file_removes_chunks_vectors_and_blob(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        file = await docs.uploaded(headers, "handbook.txt", HANDBOOK.encode())
        stored = await docs.stored(file["id"])
        assert stored is not None
        blob = docs.files_dir / stored.storage_key
        assert blob.is_file()

        async with docs.client() as http:
            deleted = await http.delete(f"/api/v1/files/{file['id']}", headers=headers)
            gone = await http.get(f"/api/v1/files/{file['id']}", headers=headers)
        await docs.settle()

        assert (deleted.status_code, gone.status_code) == (204, 404)
        async with docs.state["sessionmaker"]() as session:
            chunks = await session.scalar(
                select(func.count()).select_from(FileChunk).where(FileChunk.file_id == file["id"])
            )
            vectors = await session.scalar(
                select(func.count()).select_from(FileChunkVectorUSE).where(FileChunkVectorUSE.user_id == stored.user_id)
            )
        assert (chunks, vectors) == (0, 0)
        assert not blob.exists()

    async def test_deleting_the_account_deletes_its_files_from_storage(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        file = await docs.uploaded(headers, "handbook.txt", HANDBOOK.encode())
        stored = await docs.stored(file["id"])
        assert stored is not None
        user_dir = docs.files_dir / stored.user_id.hex
        assert user_dir.is_dir()

        async with docs.client() as http:
            response = await http.delete("/api/v1/auth/me", headers=headers)
        await docs.settle()

        assert response.status_code == 204
        assert await docs.stored(file["id"]) is None
        assert not user_dir.exists()

    async def test_deleting_a_session_deletes_the_files_attached_to_it(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        session_id = await docs.new_session(headers)
        attached = (await docs.upload(headers, "a.txt", b"attached", session_id=session_id)).json()
        shared = (await docs.upload(headers, "b.txt", b"for every session")).json()
        await docs.settle()
        attached_row = await docs.stored(attached["id"])
        assert attached_row is not None

        async with docs.client() as http:
            response = await http.delete(f"/api/v1/sessions/{session_id}", headers=headers)
        await docs.settle()

        assert response.status_code == 204
        assert await docs.stored(attached["id"]) is None
        assert not (docs.files_dir / attached_row.storage_key).exists()
        assert await docs.stored(shared["id"]) is not None


class TestIngestionFailures:
    async def test_a_scanned_pdf_ends_failed_with_the_reason(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()

        file = await docs.uploaded(headers, "scan.pdf", samples.pdf([["ignored"]], text_layer=False))

        assert file["status"] == "failed"
        assert file["reason"] == (
            "the PDF has no text layer (a scanned document or images only); OCR is not supported, "
            "so upload a PDF with selectable text"
        )
        assert file["chunk_count"] == 0

    async def test_a_damaged_pdf_ends_failed(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()

        file = await docs.uploaded(headers, "broken.pdf", b"%PDF-1.4\nthis is not a pdf body")

        assert (file["status"], file["reason"]) == ("failed", "the PDF could not be read (damaged or not a PDF)")

    async def test_a_file_with_too_much_text_ends_failed(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()
        text = "\n\n".join(f"Paragraph {n} says something about topic number {n} at some length." for n in range(600))

        file = await docs.uploaded(headers, "long.txt", text.encode())

        assert file["status"] == "failed"
        assert file["reason"].startswith("the file has too much text (")
        assert file["reason"].endswith("passages; at most 100 are indexed)")

    async def test_an_empty_text_file_ends_failed(self, docs: DocumentsHarness) -> None:
        headers = await docs.new_user()

        file = await docs.uploaded(headers, "empty.txt", b"   \n")

        assert (file["status"], file["reason"]) == ("failed", "no text could be found in the file")


def test_statuses_are_the_documented_ones() -> None:
    assert [s.value for s in FileStatus] == ["pending", "processing", "ready", "failed"]
