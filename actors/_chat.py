"""The OpenAI Chat Completions request and response, as frozen Structs.

`ChatRequest` is the allow-list of what may reach a provider: a field that is
not declared here cannot be sent, because provider bodies are built from these
Structs and nothing else. Optional fields default to `UNSET` and are left out
of encoded bodies; ``None`` is kept where the API gives it a meaning.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Role = Literal["system", "developer", "user", "assistant", "tool"]


class _Strict(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Request-side Struct: immutable, and unknown fields are a client error."""


# -- content parts -----------------------------------------------------------


class TextPart(_Strict, tag="text", tag_field="type"):
    text: str


class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | UnsetType = UNSET


class ImagePart(_Strict, tag="image_url", tag_field="type"):
    image_url: ImageURL


class InputAudio(_Strict):
    data: str
    format: str


class AudioPart(_Strict, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileData(_Strict):
    file_data: str | UnsetType = UNSET
    file_id: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class FilePart(_Strict, tag="file", tag_field="type"):
    file: FileData


class RefusalPart(_Strict, tag="refusal", tag_field="type"):
    refusal: str


UserPart = TextPart | ImagePart | AudioPart | FilePart
AssistantPart = TextPart | RefusalPart


# -- messages ----------------------------------------------------------------


class FunctionCall(_Strict):
    name: str
    arguments: str
    """A JSON document, as a string (OpenAI's wire form)."""


class ToolCall(_Strict):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(_Strict, tag="system", tag_field="role"):
    content: str | tuple[TextPart, ...]
    name: str | UnsetType = UNSET


class DeveloperMessage(_Strict, tag="developer", tag_field="role"):
    content: str | tuple[TextPart, ...]
    name: str | UnsetType = UNSET


class UserMessage(_Strict, tag="user", tag_field="role"):
    content: str | tuple[UserPart, ...]
    name: str | UnsetType = UNSET


class AssistantMessage(_Strict, tag="assistant", tag_field="role"):
    content: str | tuple[AssistantPart, ...] | None = None
    tool_calls: tuple[ToolCall, ...] | UnsetType = UNSET
    refusal: str | None | UnsetType = UNSET
    name: str | UnsetType = UNSET


class ToolMessage(_Strict, tag="tool", tag_field="role"):
    tool_call_id: str
    content: str | tuple[TextPart, ...]


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


# -- tools -------------------------------------------------------------------


class FunctionDefinition(_Strict):
    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    strict: bool | None | UnsetType = UNSET


class Tool(_Strict):
    function: FunctionDefinition
    type: Literal["function"] = "function"


class ToolChoiceFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    function: ToolChoiceFunction
    type: Literal["function"] = "function"


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class StreamOptions(_Strict):
    include_usage: bool | UnsetType = UNSET


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | UnsetType = UNSET


# -- the request -------------------------------------------------------------


class ChatRequest(_Strict):
    """An OpenAI chat-completion request; `model` names a model group."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[tuple[Message, ...], Meta(min_length=1)]
    frequency_penalty: float | None | UnsetType = UNSET
    logit_bias: dict[str, float] | None | UnsetType = UNSET
    logprobs: bool | None | UnsetType = UNSET
    top_logprobs: int | None | UnsetType = UNSET
    max_tokens: Annotated[int, Meta(ge=1)] | None | UnsetType = UNSET
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None | UnsetType = UNSET
    n: Annotated[int, Meta(ge=1)] | None | UnsetType = UNSET
    presence_penalty: float | None | UnsetType = UNSET
    reasoning_effort: str | None | UnsetType = UNSET
    response_format: ResponseFormat | UnsetType = UNSET
    seed: int | None | UnsetType = UNSET
    stop: str | tuple[str, ...] | None | UnsetType = UNSET
    stream: bool | None | UnsetType = UNSET
    stream_options: StreamOptions | None | UnsetType = UNSET
    temperature: float | None | UnsetType = UNSET
    top_p: float | None | UnsetType = UNSET
    tools: tuple[Tool, ...] | UnsetType = UNSET
    tool_choice: ToolChoice | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    user: str | UnsetType = UNSET


class ChatCall(ChatRequest):
    """A request as a client sends it: the provider request plus routing extensions.

    Routing fields live here and never in `ChatRequest`, so they cannot reach a
    provider body.
    """

    fallbacks: tuple[str, ...] | UnsetType = UNSET


# -- the response ------------------------------------------------------------


class _Lenient(Struct, kw_only=True):
    """Response-side Struct: providers add fields; what we do not declare is dropped."""


class ResponseMessage(_Lenient, frozen=True):
    content: str | None = None
    role: Literal["assistant"] = "assistant"
    tool_calls: tuple[ToolCall, ...] | UnsetType = UNSET
    refusal: str | None | UnsetType = UNSET


class Choice(_Lenient, frozen=True):
    index: int
    message: ResponseMessage
    finish_reason: str | None = None
    logprobs: Any | UnsetType = UNSET


class Usage(_Lenient, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None | UnsetType = UNSET
    completion_tokens_details: dict[str, Any] | None | UnsetType = UNSET


class ChatCompletion(_Lenient, frozen=True):
    """A `chat.completion` object as OpenAI returns it."""

    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    object: Literal["chat.completion"] = "chat.completion"
    usage: Usage | None | UnsetType = UNSET
    system_fingerprint: str | None | UnsetType = UNSET
    service_tier: str | None | UnsetType = UNSET


# Codecs are built once and reused on the hot path.
request_decoder = msgspec.json.Decoder(ChatRequest)
call_decoder = msgspec.json.Decoder(ChatCall)
completion_decoder = msgspec.json.Decoder(ChatCompletion)
encoder = msgspec.json.Encoder()
