"""Which session an OpenAI-compatible request continues.

OpenAI clients resend the whole conversation with every request and name no session. The server keeps the
conversation (the session's checkpoint), so each request is mapped to one session and only its last user
message is run. In order:

1. `X-Session-Id: <uuid>` — that session (it must be the caller's: 404 otherwise);
2. `X-OpenWebUI-Chat-Id` — Open WebUI's chat id (sent with ENABLE_FORWARD_USER_INFO_HEADERS=true);
3. the request's `user` field — one conversation per end-user id;
4. otherwise a fingerprint of the history it resends: after each answer the server records a digest of
   the conversation as the client will resend it (its user and assistant messages, with the answer as
   it was sent), so the next request of the same chat finds its session. A first message (no history)
   starts a session; a history the server never answered (edited, or cut short by a disconnect) starts
   one too, with only its last message.

System and developer messages from the client are ignored: the agent's instructions are the server's,
and clients can never add system messages (SPEC §3). Keys are stored as sha256 digests only.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.models import ChatBinding, ChatSession, Run, RunStatus

# Reasoning some clients fold into the assistant text they resend (Open WebUI's <details>, <think>).
_FOLDED_REASONING = re.compile(r"<details\b[^>]*>.*?</details>|<think>.*?</think>", re.DOTALL | re.IGNORECASE)
HISTORY_ROLES = ("user", "assistant")
SESSION_NAME_CHARS = 60


@dataclass(frozen=True)
class ChatKey:
    kind: str  # openwebui | user | history
    digest: str


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def normalized(text: str) -> str:
    """Text as compared across requests: folded reasoning dropped, whitespace collapsed."""
    return " ".join(_FOLDED_REASONING.sub(" ", text).split())


def history_key(conversation: Sequence[tuple[str, str]]) -> ChatKey:
    """The key of a conversation: its (role, text) turns, user and assistant only."""
    turns = [[role, normalized(text)] for role, text in conversation if role in HISTORY_ROLES]
    return ChatKey("history", _digest(json.dumps(turns, ensure_ascii=False)))


def header_key(kind: str, value: str) -> ChatKey:
    return ChatKey(kind, _digest(value))


def session_name(text: str) -> str:
    """A new session's name: the start of its first message, on one line."""
    line = " ".join(text.split())
    return (line[: SESSION_NAME_CHARS - 1] + "…") if len(line) > SESSION_NAME_CHARS else (line or "New chat")


class ChatBindingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ChatBindingRepository:
        return cls(session)

    async def find(self, user_id: uuid.UUID, key: ChatKey) -> uuid.UUID | None:
        statement = select(ChatBinding.session_id).where(
            ChatBinding.user_id == user_id, ChatBinding.kind == key.kind, ChatBinding.key_hash == key.digest
        )
        return await self.session.scalar(statement)

    async def bind_new(self, user_id: uuid.UUID, key: ChatKey, session_id: uuid.UUID) -> uuid.UUID:
        """Bind `key` to `session_id` unless a concurrent request bound it first; the session it is bound to."""
        inserted = await self.session.scalar(
            insert(ChatBinding)
            .values(id=uuid.uuid4(), user_id=user_id, kind=key.kind, key_hash=key.digest, session_id=session_id)
            .on_conflict_do_nothing(constraint="uq_chat_bindings_user_id_kind_key_hash")
            .returning(ChatBinding.session_id)
        )
        if isinstance(inserted, uuid.UUID):
            return inserted
        existing = await self.find(user_id, key)
        assert existing is not None
        return existing

    async def rebind(self, user_id: uuid.UUID, key: ChatKey, session_id: uuid.UUID) -> None:
        """Bind `key` to `session_id`, taking it from any session it was bound to (the latest answer wins)."""
        statement = insert(ChatBinding).values(
            id=uuid.uuid4(), user_id=user_id, kind=key.kind, key_hash=key.digest, session_id=session_id
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                constraint="uq_chat_bindings_user_id_kind_key_hash", set_={"session_id": statement.excluded.session_id}
            )
        )

    async def owns_session(self, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(ChatSession.id).where(ChatSession.id == session_id, ChatSession.user_id == user_id)
        )
        return found is not None

    async def create_session(self, user_id: uuid.UUID, name: str, assistant_id: uuid.UUID | None) -> uuid.UUID:
        chat_session = ChatSession(id=uuid.uuid4(), user_id=user_id, name=name, assistant_id=assistant_id)
        self.session.add(chat_session)
        await self.session.flush()
        return chat_session.id

    async def paused_run(self, user_id: uuid.UUID, session_id: uuid.UUID) -> uuid.UUID | None:
        """The session's run waiting for an approval, if any."""
        return await self.session.scalar(
            select(Run.id).where(
                Run.session_id == session_id, Run.user_id == user_id, Run.status == RunStatus.interrupted
            )
        )
