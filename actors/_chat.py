"""The OpenAI Chat Completions request and response, as frozen Structs.

`ChatRequest` is the allow-list of what may reach a provider: a field that is
not declared here cannot be sent, because provider bodies are built from these
Structs and nothing else. Optional fields default to `UNSET` and are left out
of encoded bodies; ``None`` is kept where the API gives it a meaning.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

# Every integer a client sends has a range, checked at decode time: JSON integers are
# unbounded and one that overflows SQLite or a provider's int64 must be a 400, not a crash.
_INT32_MAX: Final = 2**31 - 1
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class _Strict(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Request-side Struct: immutable, and unknown fields are a client error."""


# -- content parts -----------------------------------------------------------


class TextPart(_Strict, frozen=True, tag="text", tag_field="type"):
    text: str


class ImageURL(_Strict, frozen=True):
    url: str
    detail: Literal["auto", "low", "high"] | UnsetType = UNSET


class ImagePart(_Strict, frozen=True, tag="image_url", tag_field="type"):
    image_url: ImageURL


class InputAudio(_Strict, frozen=True):
    data: str
    format: str


class AudioPart(_Strict, frozen=True, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileData(_Strict, frozen=True):
    file_data: str | UnsetType = UNSET
    file_id: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class FilePart(_Strict, frozen=True, tag="file", tag_field="type"):
    file: FileData


class RefusalPart(_Strict, frozen=True, tag="refusal", tag_field="type"):
    refusal: str


UserPart = TextPart | ImagePart | AudioPart | FilePart
AssistantPart = TextPart | RefusalPart


# -- messages ----------------------------------------------------------------


class FunctionCall(_Strict, frozen=True):
    name: str
    arguments: str
    """A JSON document, as a string (OpenAI's wire form)."""


class ToolCall(_Strict, frozen=True):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(_Strict, frozen=True, tag="system", tag_field="role"):
    content: str | tuple[TextPart, ...]
    name: str | UnsetType = UNSET


class DeveloperMessage(_Strict, frozen=True, tag="developer", tag_field="role"):
    content: str | tuple[TextPart, ...]
    name: str | UnsetType = UNSET


class UserMessage(_Strict, frozen=True, tag="user", tag_field="role"):
    content: str | tuple[UserPart, ...]
    name: str | UnsetType = UNSET


class AssistantMessage(_Strict, frozen=True, tag="assistant", tag_field="role"):
    content: str | tuple[AssistantPart, ...] | None = None
    tool_calls: tuple[ToolCall, ...] | UnsetType = UNSET
    refusal: str | UnsetType | None = UNSET
    name: str | UnsetType = UNSET


class ToolMessage(_Strict, frozen=True, tag="tool", tag_field="role"):
    tool_call_id: str
    content: str | tuple[TextPart, ...]


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


# -- tools -------------------------------------------------------------------


class FunctionDefinition(_Strict, frozen=True):
    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class Tool(_Strict, frozen=True):
    function: FunctionDefinition
    type: Literal["function"] = "function"


class ToolChoiceFunction(_Strict, frozen=True):
    name: str


class NamedToolChoice(_Strict, frozen=True):
    function: ToolChoiceFunction
    type: Literal["function"] = "function"


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class StreamOptions(_Strict, frozen=True):
    include_usage: bool | UnsetType = UNSET


class ResponseFormat(_Strict, frozen=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | UnsetType = UNSET


# -- the request -------------------------------------------------------------


class ChatRequest(_Strict, frozen=True):
    """An OpenAI chat-completion request; `model` names a model group."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[tuple[Message, ...], Meta(min_length=1)]
    frequency_penalty: float | UnsetType | None = UNSET
    logit_bias: dict[str, float] | UnsetType | None = UNSET
    logprobs: bool | UnsetType | None = UNSET
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | UnsetType | None = UNSET
    max_tokens: Annotated[int, Meta(ge=1, le=_INT32_MAX)] | UnsetType | None = UNSET
    max_completion_tokens: Annotated[int, Meta(ge=1, le=_INT32_MAX)] | UnsetType | None = UNSET
    n: Annotated[int, Meta(ge=1, le=128)] | UnsetType | None = UNSET
    presence_penalty: float | UnsetType | None = UNSET
    reasoning_effort: str | UnsetType | None = UNSET
    response_format: ResponseFormat | UnsetType = UNSET
    seed: Annotated[int, Meta(ge=_INT64_MIN, le=_INT64_MAX)] | UnsetType | None = UNSET
    stop: str | tuple[str, ...] | UnsetType | None = UNSET
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    temperature: float | UnsetType | None = UNSET
    top_p: float | UnsetType | None = UNSET
    tools: tuple[Tool, ...] | UnsetType = UNSET
    tool_choice: ToolChoice | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    user: str | UnsetType = UNSET


class ChatCall(ChatRequest, frozen=True):
    """A request as a client sends it: the provider request plus routing extensions.

    Routing fields live here and never in `ChatRequest`, so they cannot reach a
    provider body.
    """

    fallbacks: tuple[str, ...] | UnsetType = UNSET


# -- the response ------------------------------------------------------------


class _Lenient(Struct, frozen=True, kw_only=True):
    """Response-side Struct: providers add fields; what we do not declare is dropped."""


class ResponseMessage(_Lenient, frozen=True):
    content: str | None = None
    role: Literal["assistant"] = "assistant"
    tool_calls: tuple[ToolCall, ...] | UnsetType = UNSET
    refusal: str | UnsetType | None = UNSET


class Choice(_Lenient, frozen=True):
    index: int
    message: ResponseMessage
    finish_reason: str | None = None
    logprobs: Any | UnsetType = UNSET


class Usage(_Lenient, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | UnsetType | None = UNSET
    completion_tokens_details: dict[str, Any] | UnsetType | None = UNSET


class ChatCompletion(_Lenient, frozen=True):
    """A `chat.completion` object as OpenAI returns it."""

    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    object: Literal["chat.completion"] = "chat.completion"
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET


# -- streaming -----------------------------------------------------------------


class FunctionDelta(_Lenient, frozen=True):
    name: str | UnsetType | None = UNSET
    arguments: str | UnsetType | None = UNSET


class ToolCallDelta(_Lenient, frozen=True):
    index: int
    id: str | UnsetType | None = UNSET
    type: Literal["function"] | UnsetType | None = UNSET
    function: FunctionDelta | UnsetType | None = UNSET


class ChunkDelta(_Lenient, frozen=True):
    role: str | UnsetType | None = UNSET
    content: str | UnsetType | None = UNSET
    tool_calls: tuple[ToolCallDelta, ...] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET


class ChunkChoice(_Lenient, frozen=True):
    index: int = 0
    delta: ChunkDelta = ChunkDelta()
    finish_reason: str | None = None
    logprobs: Any | UnsetType = UNSET


class ChatCompletionChunk(_Lenient, frozen=True):
    """A `chat.completion.chunk` as OpenAI streams it (the shape every adapter streams in)."""

    id: str = ""
    created: int = 0
    model: str = ""
    choices: tuple[ChunkChoice, ...] = ()
    object: str = "chat.completion.chunk"
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET

    def has_content(self) -> bool:
        """True once this chunk carries text, a refusal or a tool call (the commit point)."""
        for choice in self.choices:
            delta = choice.delta
            if delta.content or delta.tool_calls or delta.refusal:
                return True
        return False


# Codecs are built once and reused on the hot path.
request_decoder = msgspec.json.Decoder(ChatRequest)
call_decoder = msgspec.json.Decoder(ChatCall)
completion_decoder = msgspec.json.Decoder(ChatCompletion)
chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
encoder = msgspec.json.Encoder()
