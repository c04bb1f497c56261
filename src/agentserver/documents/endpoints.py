"""`/api/v1/files`: the caller's uploaded files. Another user's file is always a 404."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import StreamingResponse

from agentserver.auth.dependencies import CurrentUser
from agentserver.documents.errors import (
    FileNotFound,
    FileTooLarge,
    InvalidUpload,
    UnsupportedFileType,
)
from agentserver.documents.runtime import Documents
from agentserver.documents.schemas import FilePage, FileRead
from agentserver.documents.service import files as file_service
from agentserver.documents.types import KINDS
from agentserver.kit.db import SessionDep, SessionmakerDep, ShortSessionDep
from agentserver.kit.errors import NotFound, Unauthorized
from agentserver.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    InvalidCursor,
    PageCursor,
    PageLimit,
)
from agentserver.sessions.service import SessionNotFound

router = APIRouter(prefix="/api/v1/files", tags=["files"], responses={401: Unauthorized.schema()})


class DocumentsDisabled(NotFound):
    """DOCUMENTS_ENABLED is false on this server."""

    def __init__(self) -> None:
        super().__init__("File uploads are not enabled on this server")


async def get_documents(request: Request) -> Documents:
    documents: Documents | None = request.state.documents
    if documents is None:
        raise DocumentsDisabled()
    return documents


DocumentsDep = Annotated[Documents, Depends(get_documents)]

_BINARY = {"type": "string", "format": "binary"}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": ", ".join(KINDS)},
                        "session_id": {
                            "type": "string",
                            "format": "uuid",
                            "description": "Attach the file to this chat session only (default: all sessions)",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=FileRead,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a file (multipart `file`, optional `session_id`); ingestion runs in the background",
    responses={
        404: SessionNotFound.schema(),
        413: {**FileTooLarge.schema(), "description": "FileTooLarge or StorageQuotaExceeded"},
        415: UnsupportedFileType.schema(),
        422: InvalidUpload.schema(),
    },
    openapi_extra=_UPLOAD_BODY,
)
async def upload_file(
    request: Request, user: CurrentUser, sessionmaker: SessionmakerDep, documents: DocumentsDep
) -> FileRead:
    # The body is read here, as it streams, not parsed by FastAPI up front (that would spool it whole); the
    # service opens its own short sessions around it, so no connection waits on the client.
    stored = await file_service.upload(
        sessionmaker, documents, user, request.stream(), request.headers.get("content-type")
    )
    return FileRead.model_validate(stored)


@router.get(
    "",
    response_model=FilePage,
    summary="The caller's files, newest first",
    responses={422: InvalidCursor.schema()},
)
async def list_files(
    user: CurrentUser,
    session: SessionDep,
    _: DocumentsDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> FilePage:
    rows, next_cursor = await file_service.list(session, user, cursor=cursor, limit=limit)
    return FilePage(files=[FileRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{file_id}",
    response_model=FileRead,
    summary="One file: metadata and ingestion status (with the reason when it failed)",
    responses={404: FileNotFound.schema()},
)
async def get_file(file_id: uuid.UUID, user: CurrentUser, session: SessionDep, _: DocumentsDep) -> FileRead:
    return FileRead.model_validate(await file_service.get(session, user, file_id))


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / RFC 5987)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;%' else "_" for ch in name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    "/{file_id}/content",
    summary="Download the file (always as an attachment; text kinds as text/plain)",
    responses={
        404: FileNotFound.schema(),
        200: {
            "description": "The file's bytes",
            "content": {media_type: {"schema": _BINARY} for _, media_type in KINDS.values()},
        },
    },
    response_class=StreamingResponse,
)
async def download_file(
    file_id: uuid.UUID, user: CurrentUser, short_session: ShortSessionDep, documents: DocumentsDep
) -> StreamingResponse:
    # A short session of its own: the download streams after it, holding no connection.
    async with short_session() as session:
        stored = await file_service.get(session, user, file_id)
    headers = {
        "Content-Disposition": content_disposition(stored.name),
        "Content-Length": str(stored.size_bytes),
        "X-Content-Type-Options": "nosniff",
        # Opened directly anyway, it cannot run anything in our origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    body = documents.storage.stream(stored.storage_key)
    return StreamingResponse(body, media_type=stored.media_type, headers=headers)


@router.delete(
    "/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a file: its chunks and vectors now, its stored bytes right after",
    responses={404: FileNotFound.schema()},
)
async def delete_file(file_id: uuid.UUID, user: CurrentUser, session: SessionDep, _: DocumentsDep) -> Response:
    await file_service.delete(session, user, file_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
