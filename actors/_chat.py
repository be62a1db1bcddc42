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


class _Part(_Strict, frozen=True, kw_only=True):
    """A content part; both prompt-cache hints are optional on every kind that takes them."""

    cache_control: dict[str, Any] | UnsetType = UNSET
    """Anthropic's prompt-cache marker (`{"type": "ephemeral"}`), the de-facto extension."""
    prompt_cache_breakpoint: dict[str, Any] | UnsetType = UNSET
    """OpenAI's explicit prompt-cache breakpoint (`{"mode": "explicit"}`)."""


class TextPart(_Part, frozen=True, kw_only=True, tag="text", tag_field="type"):
    text: str


class ImageURL(_Strict, frozen=True):
    url: str
    detail: Literal["auto", "low", "high", "original"] | UnsetType = UNSET


class ImagePart(_Part, frozen=True, kw_only=True, tag="image_url", tag_field="type"):
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


class FilePart(_Part, frozen=True, kw_only=True, tag="file", tag_field="type"):
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


class ToolCall(_Strict, frozen=True, tag="function", tag_field="type"):
    """A function tool call in an assistant message."""

    id: str
    function: FunctionCall
    extra_content: dict[str, Any] | UnsetType = UNSET
    """Provider data that must come back on the next turn (Gemini 3's `thought_signature`)."""


class CustomCall(_Strict, frozen=True):
    name: str
    input: str


class CustomToolCall(_Strict, frozen=True, tag="custom", tag_field="type"):
    """A custom (free-form input) tool call; only the OpenAI family can take one."""

    id: str
    custom: CustomCall


AnyToolCall = ToolCall | CustomToolCall


class AssistantAudio(_Strict, frozen=True):
    id: str


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
    tool_calls: tuple[AnyToolCall, ...] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    function_call: FunctionCall | UnsetType | None = UNSET
    """Deprecated form of a single tool call (the legacy `functions` API)."""
    audio: AssistantAudio | UnsetType | None = UNSET
    reasoning_content: str | UnsetType | None = UNSET
    """Reasoning text an earlier answer carried (passed back by some clients; never required)."""
    thinking_blocks: tuple[dict[str, Any], ...] | UnsetType | None = UNSET
    """Signed thinking blocks of an earlier Anthropic answer, to round-trip on the next turn."""
    annotations: list[Any] | UnsetType | None = UNSET
    """Citations of an earlier answer, as the OpenAI SDK sends a reply message back (ignored)."""
    extra_content: dict[str, Any] | UnsetType | None = UNSET
    """Provider data of an earlier answer's message (Gemini's OpenAI-compatible endpoint)."""


class ToolMessage(_Strict, frozen=True, tag="tool", tag_field="role"):
    tool_call_id: str
    content: str | tuple[TextPart, ...]


class FunctionMessage(_Strict, frozen=True, tag="function", tag_field="role"):
    """Deprecated: a function's result in the legacy `functions` API."""

    name: str
    content: str | None


Message = (
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage
)


# -- tools -------------------------------------------------------------------


class FunctionDefinition(_Strict, frozen=True):
    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class Tool(_Strict, frozen=True, tag="function", tag_field="type"):
    """A function tool."""

    function: FunctionDefinition
    cache_control: dict[str, Any] | UnsetType = UNSET
    """Anthropic's prompt-cache marker on a tool definition (the de-facto extension)."""


class CustomToolDefinition(_Strict, frozen=True):
    name: str
    description: str | UnsetType = UNSET
    format: dict[str, Any] | UnsetType = UNSET


class CustomTool(_Strict, frozen=True, tag="custom", tag_field="type"):
    """A custom tool (free-form or grammar-constrained input); only the OpenAI family."""

    custom: CustomToolDefinition


AnyTool = Tool | CustomTool


class ToolChoiceFunction(_Strict, frozen=True):
    name: str


class NamedToolChoice(_Strict, frozen=True, tag="function", tag_field="type"):
    function: ToolChoiceFunction


class NamedCustomToolChoice(_Strict, frozen=True, tag="custom", tag_field="type"):
    custom: ToolChoiceFunction


class AllowedTools(_Strict, frozen=True):
    mode: Literal["auto", "required"]
    tools: tuple[dict[str, Any], ...]


class AllowedToolsChoice(_Strict, frozen=True, tag="allowed_tools", tag_field="type"):
    allowed_tools: AllowedTools


ToolChoice = (
    Literal["none", "auto", "required"]
    | NamedToolChoice
    | NamedCustomToolChoice
    | AllowedToolsChoice
)


class FunctionChoice(_Strict, frozen=True):
    name: str


class LegacyFunction(_Strict, frozen=True):
    """An entry of the deprecated `functions` list."""

    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET


class StreamOptions(_Strict, frozen=True):
    include_usage: bool | UnsetType = UNSET
    include_obfuscation: bool | UnsetType = UNSET


class ResponseFormat(_Strict, frozen=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | UnsetType = UNSET


class Prediction(_Strict, frozen=True):
    type: Literal["content"]
    content: str | tuple[TextPart, ...]


class AudioOutput(_Strict, frozen=True):
    format: str
    voice: str | dict[str, Any]


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
    tools: tuple[AnyTool, ...] | UnsetType = UNSET
    tool_choice: ToolChoice | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    user: str | UnsetType = UNSET
    # Parameters of the current API that most providers cannot express (see each
    # adapter's table): sent as they are to the OpenAI family, mapped or dropped elsewhere.
    store: bool | UnsetType | None = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET
    """OpenAI's stored-completion tags; not the job envelope's `metadata`."""
    modalities: tuple[str, ...] | UnsetType | None = UNSET
    audio: AudioOutput | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET
    prediction: Prediction | UnsetType | None = UNSET
    verbosity: str | UnsetType | None = UNSET
    prompt_cache_key: str | UnsetType | None = UNSET
    prompt_cache_retention: str | UnsetType | None = UNSET
    prompt_cache_options: dict[str, Any] | UnsetType = UNSET
    safety_identifier: str | UnsetType | None = UNSET
    web_search_options: dict[str, Any] | UnsetType = UNSET
    moderation: dict[str, Any] | UnsetType | None = UNSET
    functions: tuple[LegacyFunction, ...] | UnsetType = UNSET
    """Deprecated form of `tools`."""
    function_call: Literal["none", "auto"] | FunctionChoice | UnsetType = UNSET
    """Deprecated form of `tool_choice`."""


class ChatCall(ChatRequest, frozen=True):
    """A request as a client sends it: the provider request plus routing extensions.

    Routing fields live here and never in `ChatRequest`, so they cannot reach a
    provider body.
    """

    fallbacks: tuple[str, ...] | UnsetType = UNSET


# -- the response ------------------------------------------------------------


class _Lenient(Struct, frozen=True, kw_only=True):
    """Response-side Struct: providers add fields; what we do not declare is dropped.

    Every field has a default and takes ``null`` where a provider may send one, so
    that a reply missing an optional key or carrying a ``null`` is still served.
    """


class ResponseFunctionCall(_Lenient, frozen=True):
    name: str = ""
    arguments: str = ""


class ResponseToolCall(_Lenient, frozen=True):
    """A tool call in a reply (read tolerantly; `extra_content` is passed through)."""

    id: str = ""
    type: str = "function"
    function: ResponseFunctionCall = ResponseFunctionCall()
    extra_content: dict[str, Any] | UnsetType = UNSET
    """Gemini 3's `google.thought_signature`: the client must send it back next turn."""


class ResponseMessage(_Lenient, frozen=True):
    content: str | None = None
    role: str = "assistant"
    tool_calls: tuple[ResponseToolCall, ...] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    annotations: list[Any] | UnsetType | None = UNSET
    audio: dict[str, Any] | UnsetType | None = UNSET
    function_call: dict[str, Any] | UnsetType | None = UNSET
    reasoning_content: str | UnsetType | None = UNSET
    """Thinking text (DeepSeek, vLLM, LiteLLM's convention); Anthropic's and Gemini's too."""
    reasoning: str | UnsetType | None = UNSET
    """The same under the name OpenRouter and newer vLLM use; parsers move it to
    `reasoning_content`, so it never reaches a client."""
    thinking_blocks: tuple[dict[str, Any], ...] | UnsetType = UNSET
    """Anthropic's signed thinking blocks, for the client to send back next turn."""
    extra_content: dict[str, Any] | UnsetType | None = UNSET
    """Provider data on the message itself (Gemini's OpenAI-compatible `thought_signature`)."""


class Choice(_Lenient, frozen=True):
    index: int = 0
    message: ResponseMessage = ResponseMessage()
    finish_reason: str | None = None
    logprobs: Any | UnsetType = UNSET


class Usage(_Lenient, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | UnsetType | None = UNSET
    completion_tokens_details: dict[str, Any] | UnsetType | None = UNSET
    cost_usd: float | UnsetType = UNSET
    """Our extension: what the answer cost, set by the actor from its price (see
    actors/_cost.py); any value an upstream sent under this name is replaced or removed."""


class ChatCompletion(_Lenient, frozen=True):
    """A `chat.completion` object as OpenAI returns it."""

    id: str = ""
    created: int = 0
    model: str = ""
    choices: tuple[Choice, ...] = ()
    object: str = "chat.completion"
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET


# -- streaming -----------------------------------------------------------------


class FunctionDelta(_Lenient, frozen=True):
    name: str | UnsetType | None = UNSET
    arguments: str | UnsetType | None = UNSET


class ToolCallDelta(_Lenient, frozen=True):
    index: int = 0
    id: str | UnsetType | None = UNSET
    type: str | UnsetType | None = UNSET
    function: FunctionDelta | UnsetType | None = UNSET
    extra_content: dict[str, Any] | UnsetType | None = UNSET


class ChunkDelta(_Lenient, frozen=True):
    role: str | UnsetType | None = UNSET
    content: str | UnsetType | None = UNSET
    tool_calls: tuple[ToolCallDelta, ...] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    reasoning_content: str | UnsetType | None = UNSET
    reasoning: str | UnsetType | None = UNSET
    """OpenRouter's and newer vLLM's name for `reasoning_content` (moved there by parsers)."""
    annotations: list[Any] | UnsetType | None = UNSET
    audio: dict[str, Any] | UnsetType | None = UNSET
    function_call: dict[str, Any] | UnsetType | None = UNSET
    extra_content: dict[str, Any] | UnsetType | None = UNSET
    thinking_blocks: tuple[dict[str, Any], ...] | UnsetType | None = UNSET
    """Whole signed thinking blocks (Anthropic's), each once its block has ended."""


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
    service_tier: str | UnsetType | None = UNSET
    error: Any | UnsetType = UNSET
    """An in-band error (an OpenAI-style stream's `{"error": ...}`), read with the chunk so
    that finding one costs no search of the bytes: the parser raises it, or leaves it
    out when it is no error object; no chunk ever carries one to a client."""

    def has_content(self) -> bool:
        """True once this chunk carries text, reasoning, a refusal or a tool call: the commit point.

        Reasoning commits too: the client sees it as it comes, and a reasoning model's
        thinking is not held back (and buffered) until its first word of answer.
        """
        for choice in self.choices:
            delta = choice.delta
            if delta.content or delta.tool_calls or delta.refusal or delta.reasoning_content:
                return True
        return False


# Codecs are built once and reused on the hot path.
request_decoder = msgspec.json.Decoder(ChatRequest)
call_decoder = msgspec.json.Decoder(ChatCall)
completion_decoder = msgspec.json.Decoder(ChatCompletion)
chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
encoder = msgspec.json.Encoder()
