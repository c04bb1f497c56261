"""Token-aware chunks with overlap, counted with the embedding model's own tokenizer.

Segments (a PDF page, a Markdown/HTML/docx section) are cut into paragraphs, paragraphs longer than a
chunk into sentences, and sentences still longer into token windows. Units are then packed greedily up
to `max_tokens`; the next chunk starts with the last units of the previous one, up to `overlap` tokens, so
a passage cut at a boundary is whole in one of the two. A chunk never spans two segments: its page and
section are exact, which is what citations need.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from agentserver.documents.extract import Segment

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int | None
    section: str | None


def counting_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """A copy of the embedder's tokenizer without truncation and padding (they would hide long units)."""
    counter = Tokenizer.from_str(tokenizer.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter


class Chunker:
    def __init__(self, tokenizer: Tokenizer, *, max_tokens: int, overlap: int) -> None:
        if overlap >= max_tokens:
            raise ValueError("the overlap must be smaller than a chunk")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def _units(self, text: str) -> list[tuple[str, int]]:
        paragraphs = [p.strip() for p in _PARAGRAPHS.split(text) if p.strip()]
        units: list[tuple[str, int]] = []
        for paragraph, tokens in zip(paragraphs, self.count(paragraphs), strict=True):
            if tokens <= self.max_tokens:
                units.append((paragraph, tokens))
                continue
            sentences = [s for s in _SENTENCES.split(paragraph) if s.strip()]
            for sentence, count in zip(sentences, self.count(sentences), strict=True):
                if count <= self.max_tokens:
                    units.append((sentence, count))
                else:
                    units.extend(self._windows(sentence))
        return units

    def _windows(self, text: str) -> list[tuple[str, int]]:
        """A unit longer than a chunk (no sentence breaks): token windows that overlap like chunks do."""
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        step = self.max_tokens - self.overlap
        windows = []
        for start in range(0, len(offsets), step):
            end = min(start + self.max_tokens, len(offsets))
            windows.append((text[offsets[start][0] : offsets[end - 1][1]], end - start))
            if end == len(offsets):
                break
        return windows

    def chunk(self, segments: Sequence[Segment]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for segment in segments:
            current: list[tuple[str, int]] = []
            size = 0
            fresh = 0  # units in `current` that no earlier chunk holds
            for unit in self._units(segment.text):
                if current and size + unit[1] > self.max_tokens:
                    chunks.append(Chunk("\n\n".join(t for t, _ in current), segment.page, segment.section))
                    kept: list[tuple[str, int]] = []
                    kept_size = 0
                    for previous in reversed(current):
                        grown = kept_size + previous[1]
                        if grown > self.overlap or grown + unit[1] > self.max_tokens:
                            break
                        kept.insert(0, previous)
                        kept_size += previous[1]
                    current, size, fresh = kept, kept_size, 0
                current.append(unit)
                size += unit[1]
                fresh += 1
            if current and fresh:
                chunks.append(Chunk("\n\n".join(t for t, _ in current), segment.page, segment.section))
        return chunks
