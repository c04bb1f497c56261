"""All models, imported here so Alembic's autogenerate and the mappers see every table."""

from agentserver.models.base import Base
from agentserver.models.chat_session import ChatSession
from agentserver.models.message import Message, MessageRole
from agentserver.models.refresh_token import RefreshToken
from agentserver.models.user import User

__all__ = ["Base", "ChatSession", "Message", "MessageRole", "RefreshToken", "User"]
