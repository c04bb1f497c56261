"""The agent's `search_documents` tool and the per-turn line that tells the agent which files it has.

Who is searching comes from the run's TurnContext (set by the tools node for the calls it runs), never
from the model's arguments: the model only chooses the query.
"""

from __future__ import annotations

import uuid

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.agent.state import current_turn
from agentserver.documents.repository import FileRepository
from agentserver.documents.search import DocumentSearch
from agentserver.kit.db import session_scope
from agentserver.models import FileStatus

PASSAGE_CHARS = 700
PROMPT_FILES = 20
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


class FilesPrompt:
    """The per-turn context section listing the files a session's agent can search."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def section(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
        async with session_scope(self.sessionmaker) as db:
            rows = await FileRepository.from_session(db).visible_in_session(user_id, session_id, PROMPT_FILES + 1)
        if not rows:
            return ""
        lines = []
        for name, status, pages in rows[:PROMPT_FILES]:
            shown = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
            detail = f"{pages} pages" if pages else ""
            if status is not FileStatus.ready:
                detail = "not searchable yet" if status in (FileStatus.pending, FileStatus.processing) else "unreadable"
            lines.append(f"- {shown}" + (f" ({detail})" if detail else ""))
        if len(rows) > PROMPT_FILES:
            lines.append("- … and more")
        return "\n".join(lines)
