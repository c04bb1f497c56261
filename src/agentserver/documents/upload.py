"""Receive a multipart upload while it streams: the size limit is enforced as the bytes arrive.

Starlette's form parser would spool the whole file before the endpoint runs; here the endpoint reads the
request body itself, feeds it to python-multipart's push parser, and writes the file part to a temporary
file in batches (off the event loop). The first byte past the limit ends the request with a 413: a 1 GB
upload costs at most the limit in disk and one batch in memory. The content checks that need every byte
(SHA-256, valid UTF-8 for text kinds) run on the way through.

Accepted fields: `file` (exactly one) and `session_id` (optional, a short text field). Anything else is a
422, so a client's typo is not silently ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.multipart import MultipartParser, parse_options_header

from agentserver.documents.errors import FileTooLarge, InvalidUpload
from agentserver.documents.types import SNIFF_BYTES, TextCheck
from agentserver.kit.hardening import BodyTooLarge

# Written to disk in batches this big: few thread hops, bounded memory.
FLUSH_BYTES = 1024 * 1024
MAX_PARTS = 4
MAX_FIELD_BYTES = 100
FIELDS = ("file", "session_id")


@dataclass
class ReceivedUpload:
    filename: str  # as the client sent it (reduce with types.safe_name before showing or storing)
    path: Path  # the temporary file holding the bytes (the caller moves it into storage or deletes it)
    size: int
    sha256: str
    head: bytes  # the first SNIFF_BYTES, for type sniffing
    text: TextCheck  # whether the bytes are UTF-8 text
    session_id: str | None


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    value: bytearray = field(default_factory=bytearray)


class _Receiver:
    """The parser's callbacks (synchronous, called inside `parser.write`); file writes happen in `drain`."""

    def __init__(self, spool_dir: Path, max_bytes: int) -> None:
        self.spool_dir = spool_dir
        self.max_bytes = max_bytes
        self.part: _Part | None = None
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.parts = 0
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = bytearray()
        self.text = TextCheck()
        self.pending = bytearray()
        self.file: IO[bytes] | None = None
        self.path: Path | None = None
        self.error: Exception | None = None
        self.ended = False

    # --- callbacks ------------------------------------------------------------------------------------
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            self._fail(InvalidUpload(f"body: at most {MAX_PARTS} form fields"))
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.part is not None:
            self.part.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        part = self.part
        if part is None:
            return
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if part.name not in FIELDS:
            self._fail(InvalidUpload(f"body: unexpected form field {part.name[:50]!r}; send `file` and `session_id`"))
            return
        if part.name == "file":
            if self.filename is not None:
                self._fail(InvalidUpload("file: send one file per request"))
                return
            raw = options.get(b"filename")
            if raw is None:
                self._fail(InvalidUpload("file: the part has no filename"))
                return
            self.filename = raw.decode("utf-8", "replace")
            self.path = self.spool_dir / uuid.uuid4().hex

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        if part is None or self.error is not None:
            return
        chunk = data[start:end]
        if part.name != "file":
            part.value += chunk
            if len(part.value) > MAX_FIELD_BYTES:
                self._fail(InvalidUpload(f"{part.name}: too long"))
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self._fail(FileTooLarge(self.max_bytes))
            return
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        self.digest.update(chunk)
        self.text.feed(chunk)
        self.pending += chunk

    def on_part_end(self) -> None:
        part = self.part
        if part is not None and part.name != "file" and part.name:
            try:
                self.fields[part.name] = part.value.decode("utf-8").strip()
            except UnicodeDecodeError:
                self._fail(InvalidUpload(f"{part.name}: not UTF-8 text"))
        self.part = None

    def on_end(self) -> None:
        self.ended = True

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error

    # --- async side -----------------------------------------------------------------------------------
    async def drain(self, *, final: bool = False) -> None:
        if self.path is None or (len(self.pending) < FLUSH_BYTES and not final):
            return
        if self.file is None:
            self.file = await asyncio.to_thread(self.path.open, "wb")
        batch, self.pending = bytes(self.pending), bytearray()
        if batch:
            await asyncio.to_thread(self.file.write, batch)

    async def close(self) -> None:
        if self.file is not None:
            await asyncio.to_thread(self.file.close)
            self.file = None

    async def discard(self) -> None:
        await self.close()
        if self.path is not None:
            await asyncio.to_thread(self.path.unlink, missing_ok=True)


async def _feed(parser: MultipartParser, receiver: _Receiver, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except Exception as exc:  # python-multipart's MultipartParseError and friends
        raise InvalidUpload("body: malformed multipart body") from exc
    if receiver.error is not None:
        raise receiver.error
    await receiver.drain()


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise InvalidUpload("body: send the file as multipart/form-data (a `file` field)")
    return boundary


async def receive_upload(
    body: AsyncIterator[bytes], content_type: str | None, *, spool_dir: Path, max_bytes: int
) -> ReceivedUpload:
    """Parse the multipart `body` as it arrives; the file part goes to a temporary file in `spool_dir`.

    Raises FileTooLarge (413) as soon as the file passes `max_bytes`, InvalidUpload (422) for a malformed
    body; the temporary file is removed on any failure (a client that goes away included).
    """
    receiver = _Receiver(spool_dir, max_bytes)
    callbacks = {
        "on_part_begin": receiver.on_part_begin,
        "on_part_data": receiver.on_part_data,
        "on_part_end": receiver.on_part_end,
        "on_header_field": receiver.on_header_field,
        "on_header_value": receiver.on_header_value,
        "on_header_end": receiver.on_header_end,
        "on_headers_finished": receiver.on_headers_finished,
        "on_end": receiver.on_end,
    }
    parser = MultipartParser(boundary_of(content_type), callbacks)  # type: ignore[arg-type]
    try:
        try:
            async for chunk in body:
                await _feed(parser, receiver, chunk)
        except BodyTooLarge:
            # The whole body passed its bound (file + multipart envelope) before the file part did.
            raise FileTooLarge(max_bytes) from None
        parser.finalize()
        if receiver.error is not None:
            raise receiver.error
        if receiver.filename is None or receiver.path is None:
            raise InvalidUpload("file: the form has no `file` part")
        if not receiver.ended:
            raise InvalidUpload("body: the multipart body ended early")
        receiver.text.feed(b"", final=True)
        await receiver.drain(final=True)
        if receiver.file is None:  # an empty file: create it all the same
            receiver.file = await asyncio.to_thread(receiver.path.open, "wb")
        await receiver.close()
    except BaseException:
        await asyncio.shield(receiver.discard())
        raise
    return ReceivedUpload(
        filename=receiver.filename,
        path=receiver.path,
        size=receiver.size,
        sha256=receiver.digest.hexdigest(),
        head=bytes(receiver.head),
        text=receiver.text,
        session_id=receiver.fields.get("session_id") or None,
    )
