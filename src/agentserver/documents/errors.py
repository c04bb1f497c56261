"""Errors of the files API (rendered by kit/errors.py as `{"error", "detail"}`)."""

from __future__ import annotations

from agentserver.kit.errors import AppError, NotFound


class FileNotFound(NotFound):
    """The file does not exist or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("File not found")


class FileTooLarge(AppError):
    """The upload is larger than MAX_UPLOAD_BYTES."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"file: larger than the {limit} bytes an upload may have", headers={"Connection": "close"})


class StorageQuotaExceeded(AppError):
    """The user's stored files would pass MAX_FILES_BYTES_PER_USER."""

    status_code = 413

    def __init__(self, used: int, limit: int) -> None:
        super().__init__(
            f"file: your files use {used} of {limit} bytes; this upload does not fit. Delete files to make room.",
            headers={"Connection": "close"},
        )


class UnsupportedFileType(AppError):
    """The file's type is not accepted, or its content does not match its name."""

    status_code = 415


class InvalidUpload(AppError):
    """The multipart body is malformed or lacks the `file` part."""

    status_code = 422
