"""What a file is, decided by its content: magic bytes, a zip's entries, valid UTF-8 text.

The name's extension says what the client claims; the content must agree (415 otherwise): a PNG called
`x.pdf` or a PDF called `x.txt` is refused. Text kinds (txt, md, html) are told apart by the name only:
all three are UTF-8 text, and they are served back as text/plain (an uploaded page never runs in our
origin). Names are reduced to a safe display name: no directories, no control characters, NFC, bounded.
"""

from __future__ import annotations

import codecs
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agentserver.documents.errors import UnsupportedFileType

NAME_MAX_LENGTH = 255

# kind -> (extensions, the media type stored and served)
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "pdf": ((".pdf",), "application/pdf"),
    "txt": ((".txt", ".text"), "text/plain; charset=utf-8"),
    "md": ((".md", ".markdown"), "text/plain; charset=utf-8"),
    "html": ((".html", ".htm"), "text/plain; charset=utf-8"),
    "docx": ((".docx",), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "png": ((".png",), "image/png"),
    "jpg": ((".jpg", ".jpeg"), "image/jpeg"),
}
TEXT_KINDS = frozenset({"txt", "md", "html"})
IMAGE_KINDS = frozenset({"png", "jpg"})
ACCEPTED = ", ".join(sorted(KINDS))
# Enough of the head for every signature below.
SNIFF_BYTES = 1024


@dataclass(frozen=True)
class FileType:
    kind: str
    media_type: str


def safe_name(raw: str) -> str:
    """The display name of a client's file name: its last path component, printable, NFC, ≤255 chars."""
    name = raw.replace("\\", "/")
    name = PurePosixPath(name).name if "/" in name else name
    name = unicodedata.normalize("NFC", name)
    # Control and format characters (NUL, newlines, bidi overrides) and lone surrogates go.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs")).strip()
    if name in ("", ".", ".."):
        name = "file"
    if len(name) > NAME_MAX_LENGTH:
        suffix = Path(name).suffix[:16]
        name = name[: NAME_MAX_LENGTH - len(suffix)] + suffix
    return name


def declared_kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    for kind, (extensions, _) in KINDS.items():
        if suffix in extensions:
            return kind
    raise UnsupportedFileType(f"file: unsupported type {suffix or '(no extension)'!r}; accepted: {ACCEPTED}")


def sniff(head: bytes) -> str | None:
    """The binary kind the first bytes announce (pdf, png, jpg, zip), or None (perhaps text)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"%PDF-"):
        return "pdf"
    return None


class TextCheck:
    """Fed the upload's chunks: is it all valid UTF-8 without NUL bytes? (binary files fail within a chunk)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.ok = True

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        if not self.ok:
            return
        try:
            text = self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            self.ok = False
            return
        if "\x00" in text:
            self.ok = False


def is_docx(path: Path) -> bool:
    """A Word document is a zip with the OOXML content types and a main document part."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return "[Content_Types].xml" in names and "word/document.xml" in names


def check_type(name: str, head: bytes, text: TextCheck, path: Path) -> FileType:
    """The file's type if its content is what its name says; UnsupportedFileType (415) otherwise."""
    claimed = declared_kind(name)
    found = sniff(head)
    mismatch = UnsupportedFileType(
        f"file: the content is not a {claimed} file (the type is checked from the content, not the name)"
    )
    if claimed in TEXT_KINDS:
        if found is not None or not text.ok:
            raise mismatch
    elif claimed == "docx":
        if found != "zip" or not is_docx(path):
            raise mismatch
    elif found != claimed:
        raise mismatch
    return FileType(claimed, KINDS[claimed][1])
