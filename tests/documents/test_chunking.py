"""Token-aware chunking: bounded chunks, overlap between neighbours, exact pages and sections."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from agentserver.documents.chunking import Chunker, counting_tokenizer
from agentserver.documents.extract import Segment
from agentserver.memory.embeddings import tokenizer_path


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return Chunker(counting_tokenizer(Tokenizer.from_file(str(tokenizer_path()))), max_tokens=40, overlap=12)


def sentences(count: int) -> str:
    return " ".join(f"Sentence number {n} tells about topic {n}." for n in range(count))


class TestChunker:
    def test_no_chunk_is_longer_than_the_budget(self, chunker: Chunker) -> None:
        chunks = chunker.chunk([Segment(sentences(30))])

        assert len(chunks) > 1
        assert max(chunker.count([c.text for c in chunks])) <= 40

    def test_neighbours_share_the_overlap(self, chunker: Chunker) -> None:
        chunks = chunker.chunk([Segment(sentences(30))])

        for previous, following in zip(chunks, chunks[1:], strict=False):
            last_sentence = previous.text.split("\n\n")[-1]
            assert following.text.startswith(last_sentence)

    def test_every_sentence_is_kept(self, chunker: Chunker) -> None:
        chunks = chunker.chunk([Segment(sentences(30))])

        joined = " ".join(c.text for c in chunks)
        assert all(f"Sentence number {n} tells" in joined for n in range(30))

    def test_a_text_without_breaks_is_cut_into_windows(self, chunker: Chunker) -> None:
        text = " ".join(f"word{n}" for n in range(300))

        chunks = chunker.chunk([Segment(text)])

        assert max(chunker.count([c.text for c in chunks])) <= 40
        assert chunks[0].text.startswith("word0 ")
        assert chunks[-1].text.endswith("word299")

    def test_chunks_keep_their_page_and_section(self, chunker: Chunker) -> None:
        chunks = chunker.chunk([Segment("Page one text.", page=1), Segment("Page two text.", page=2, section="Terms")])

        assert [(c.text, c.page, c.section) for c in chunks] == [
            ("Page one text.", 1, None),
            ("Page two text.", 2, "Terms"),
        ]

    def test_an_empty_segment_makes_no_chunk(self, chunker: Chunker) -> None:
        assert chunker.chunk([Segment("  \n\n ")]) == []

    def test_the_overlap_must_be_smaller_than_a_chunk(self) -> None:
        with pytest.raises(ValueError, match="overlap"):
            Chunker(Tokenizer.from_file(str(tokenizer_path())), max_tokens=10, overlap=10)
