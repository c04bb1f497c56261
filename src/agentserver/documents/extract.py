"""Text out of each accepted format, as segments that remember their page (PDF) or section (headings).

Blocking CPU work: call `extract` in a worker thread. A file that cannot give text ends its ingestion
`failed` with `ExtractionFailed`'s message as the reason (shown to the user): a scanned PDF without a text
layer, an encrypted or corrupt file, a docx whose document part is missing or too large.

Libraries: pypdf for PDF (pure Python, ~1.5 MB installed: no native parts to build); docx and HTML with
the standard library (a docx is a zip of WordprocessingML; html.parser skips scripts and styles), since
the heavier converters (markitdown, docling) pull in hundreds of MB for what these formats need here.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from xml.etree import ElementTree

import pypdf
import structlog
from pypdf.errors import PdfReadError

from agentserver.documents.types import IMAGE_KINDS

log = structlog.get_logger(__name__)

# A docx's document part may be at most this big once inflated (a zip bomb is refused, not inflated).
MAX_DOCX_XML_BYTES = 64 * 1024 * 1024
SECTION_MAX_LENGTH = 300
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")


class ExtractionFailed(Exception):
    """The file gives no usable text; the message is the reason the user sees."""


@dataclass(frozen=True)
class Segment:
    text: str
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class Extracted:
    segments: list[Segment]
    pages: int | None = None


def _section(title: str) -> str | None:
    title = " ".join(title.split())
    return title[:SECTION_MAX_LENGTH] or None


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; PDFs sometimes carry them.
    return text.replace("\x00", "")


def extract(kind: str, data: bytes, *, max_pages: int) -> Extracted:
    if kind in IMAGE_KINDS:
        return Extracted([])
    if kind == "pdf":
        return extract_pdf(data, max_pages=max_pages)
    if kind == "docx":
        return extract_docx(data)
    text = data.decode("utf-8-sig")
    if kind == "md":
        return Extracted(extract_markdown(text))
    if kind == "html":
        return Extracted(extract_html(text))
    return Extracted([Segment(_clean(text))] if text.strip() else [])


def extract_pdf(data: bytes, *, max_pages: int) -> Extracted:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionFailed("the PDF is password-protected; upload a copy without a password")
        count = len(reader.pages)
    except ExtractionFailed:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise ExtractionFailed("the PDF could not be read (damaged or not a PDF)") from exc
    if count > max_pages:
        raise ExtractionFailed(f"the PDF has {count} pages; at most {max_pages} are accepted")
    segments = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # a broken page must not lose the others
            log.warning("documents.pdf_page_unreadable", page=number, error=type(exc).__name__)
            continue
        text = _clean(text)
        if text.strip():
            segments.append(Segment(text, page=number))
    if not segments:
        raise ExtractionFailed(
            "the PDF has no text layer (a scanned document or images only); OCR is not supported, "
            "so upload a PDF with selectable text"
        )
    return Extracted(segments, pages=count)


@dataclass
class _Sections:
    """Lines gathered under the current heading: each heading closes the segment before it."""

    segments: list[Segment] = field(default_factory=list)
    section: str | None = None
    lines: list[str] = field(default_factory=list)

    def heading(self, title: str) -> None:
        self.flush()
        self.section = _section(title)

    def flush(self) -> None:
        body = "\n".join(self.lines).strip()
        if body:
            self.segments.append(Segment(_clean(body), section=self.section))
        self.lines.clear()


def extract_markdown(text: str) -> list[Segment]:
    sections = _Sections()
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        heading = None if in_code else _MD_HEADING.match(line)
        if heading:
            sections.heading(heading.group(2))
            sections.lines.append(heading.group(2))  # the heading's words are searchable too
        else:
            sections.lines.append(line)
    sections.flush()
    return sections.segments


_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "blockquote", "pre", "hr", "dd", "dt"}
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SKIPPED = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object"})


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.segments: list[Segment] = []
        self.section: str | None = None
        self.parts: list[str] = []
        self.heading: list[str] | None = None
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag in _HEADINGS:
            self.flush()
            self.heading = []
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _HEADINGS and self.heading is not None:
            title = "".join(self.heading)
            self.section = _section(title)
            self.parts.append(title + "\n")
            self.heading = None
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.heading is not None:
            self.heading.append(data)
        else:
            self.parts.append(data)

    def flush(self) -> None:
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(self.parts))
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        if text:
            self.segments.append(Segment(_clean(text), section=self.section))
        self.parts = []


def extract_html(text: str) -> list[Segment]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser.flush()
    return parser.segments


def extract_docx(data: bytes) -> Extracted:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > MAX_DOCX_XML_BYTES:
                raise ExtractionFailed("the Word document is too large once uncompressed")
            xml = archive.read(info)
    except ExtractionFailed:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ExtractionFailed("the Word document could not be read (damaged or not a .docx)") from exc
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 - expat without external entities; size bounded above
    except ElementTree.ParseError as exc:
        raise ExtractionFailed("the Word document could not be read (invalid document XML)") from exc
    sections = _Sections()
    for paragraph in root.iter(f"{_W}p"):
        style = paragraph.find(f"{_W}pPr/{_W}pStyle")
        style_name = (style.get(f"{_W}val") or "") if style is not None else ""
        pieces = []
        for node in paragraph.iter():
            if node.tag == f"{_W}t" and node.text:
                pieces.append(node.text)
            elif node.tag in (f"{_W}tab",):
                pieces.append("\t")
            elif node.tag in (f"{_W}br", f"{_W}cr"):
                pieces.append("\n")
        text = "".join(pieces)
        if style_name.lower().startswith(("heading", "title")) and text.strip():
            sections.heading(text)
        sections.lines.append(text)
    sections.flush()
    return Extracted(sections.segments)
