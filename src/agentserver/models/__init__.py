"""All models, imported here so Alembic's autogenerate and the mappers see every table."""

from agentserver.models.api_key import ApiKey
from agentserver.models.assistant import UserAssistant
from agentserver.models.base import Base
from agentserver.models.chat_binding import ChatBinding
from agentserver.models.chat_session import ChatSession
from agentserver.models.file import FileChunk, FileChunkVectorMiniLM, FileChunkVectorUSE, FileStatus, StoredFile
from agentserver.models.job import Job, JobStatus
from agentserver.models.message import Message, MessageRole
from agentserver.models.refresh_token import RefreshToken
from agentserver.models.run import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    UNFINISHED_STATUSES,
    MultitaskStrategy,
    Run,
    RunStatus,
)
from agentserver.models.run_event import RunEventRow
from agentserver.models.usage import UsageCounter, UserQuota
from agentserver.models.user import User, UserRole

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "UNFINISHED_STATUSES",
    "ApiKey",
    "Base",
    "ChatBinding",
    "ChatSession",
    "FileChunk",
    "FileChunkVectorMiniLM",
    "FileChunkVectorUSE",
    "FileStatus",
    "Job",
    "JobStatus",
    "Message",
    "MessageRole",
    "MultitaskStrategy",
    "RefreshToken",
    "Run",
    "RunEventRow",
    "RunStatus",
    "StoredFile",
    "UsageCounter",
    "User",
    "UserAssistant",
    "UserQuota",
    "UserRole",
]
