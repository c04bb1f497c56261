"""The agent's `search_documents` tool and the per-turn line that tells the agent which files it has.

Who is searching comes from the run's TurnContext (set by the tools node for the calls it runs), never
from the model's arguments: the model only chooses the query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from agentserver.agent.state import current_turn
from agentserver.documents.search import DocumentSearch
from agentserver.documents.types import IMAGE_KINDS
from agentserver.models import FileStatus
from agentserver.runs.repository import CLAIM_FILES

PASSAGE_CHARS = 700
PROMPT_FILES = CLAIM_FILES
NAME_CHARS = 80


class SearchDocumentsArgs(BaseModel):
    query: str = Field(min_length=1, max_length=300, description="What to look for in the user's files")


def search_documents_tool(search: DocumentSearch, top_k: int) -> BaseTool:
    async def search_documents(query: str) -> str:
        turn = current_turn()
        if turn is None:
            return "Error: search_documents is only available in a chat turn."
        passages = await search.search(turn.user_id, turn.session_id, query, top_k=top_k)
        if not passages:
            return (
                "No passage of the user's files matches this query. Say that the files do not answer it; "
                "do not make up an answer from them."
            )
        blocks = []
        for number, passage in enumerate(passages, start=1):
            content = " ".join(passage.content.split())
            if len(content) > PASSAGE_CHARS:
                content = content[:PASSAGE_CHARS] + " …"
            blocks.append(f"[{number}] {passage.citation}\n{content}")
        return (
            "Passages from the user's files (cite the file name and page or section you use, "
            "e.g. “(handbook.pdf, page 3)”):\n\n" + "\n\n".join(blocks)
        )

    return StructuredTool.from_function(
        coroutine=search_documents,
        name="search_documents",
        description=(
            "Search the files the user uploaded (PDF, Word, text, web pages). Returns passages with the "
            "file name and page or section to cite."
        ),
        args_schema=SearchDocumentsArgs,
    )


def files_section(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-turn context lines listing the files a session's agent sees (rows: name, status, pages, kind,
    newest first, as the run's claim reads them: runs/repository.py). Images are stored, not seen: the
    line tells the model so, and it says it cannot see them rather than inventing their content."""
    if not rows:
        return ""
    lines = []
    for row in rows[:PROMPT_FILES]:
        name, status, pages = str(row["name"]), str(row["status"]), row.get("pages")
        shown = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
        detail = f"{pages} pages" if pages else ""
        if row.get("kind") in IMAGE_KINDS:
            detail = "an image: you cannot see images, say so if asked about it"
        elif status != FileStatus.ready:
            detail = "not searchable yet" if status in (FileStatus.pending, FileStatus.processing) else "unreadable"
        lines.append(f"- {shown}" + (f" ({detail})" if detail else ""))
    if len(rows) > PROMPT_FILES:
        lines.append("- … and more")
    return "\n".join(lines)
