"""OpenAI Chat Completions bodies: what clients send (unknown fields ignored, as OpenAI does) and get back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentserver.chat.schemas import MESSAGE_PARSE_LIMIT

MAX_MESSAGES = 2000
Text = Annotated[str, Field(max_length=MESSAGE_PARSE_LIMIT)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Annotated[str, Field(max_length=64)]
    text: Text | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Text | Annotated[list[ContentPart], Field(max_length=MAX_MESSAGES)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None

    def text(self) -> str:
        """The message's text: a string, or its text parts joined (other parts have no text)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content or () if part.type == "text")

    def has_non_text(self) -> bool:
        return isinstance(self.content, list) and any(part.type != "text" for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields agentserver acts on. Others (tools, response_format, logprobs, ...) are ignored: the agent
    has its own tools, and this API never asks a client to run one."""

    model_config = ConfigDict(extra="ignore")

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    stop: (
        Annotated[str, Field(max_length=256)]
        | Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=4)]
        | None
    ) = None
    n: Annotated[int, Field(ge=1, le=1)] | None = Field(default=None, description="Only 1 is supported")
    user: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="An end-user id: all requests with the same one continue one conversation"
    )

    @field_validator("messages")
    @classmethod
    def _ends_with_a_user_message(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if messages[-1].role != "user":
            raise ValueError("the last message must have the role `user` (the server keeps the conversation)")
        return messages

    def model_options(self) -> dict[str, Any]:
        """The parameters passed to the agent's model calls."""
        options: dict[str, Any] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.top_p is not None:
            options["top_p"] = self.top_p
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        if self.stop:
            options["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return options


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: str | None = Field(
        default=None, description="What the agent did on the way (tool calls and their results), as text"
    )


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None = None
