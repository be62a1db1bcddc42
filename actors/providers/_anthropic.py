"""Anthropic Messages API (PROVIDERS.md §3): OpenAI chat in, Anthropic message out.

    OpenAI chat                          Anthropic Messages
    system / developer messages     ->   top-level `system`
    user text, image, file parts    ->   text / image / document blocks
    assistant `tool_calls`          ->   `tool_use` blocks (arguments -> `input` object)
    tool messages (consecutive)     ->   `tool_result` blocks of ONE user turn
    consecutive same-role turns     ->   one turn (Anthropic alternates user/assistant)
    tool_choice auto/required/none  ->   {"type": "auto" / "any" / "none"}
    tool_choice {"function": X}     ->   {"type": "tool", "name": X}
    parallel_tool_calls = false     ->   disable_parallel_tool_use = true
    max_completion_tokens           ->   max_tokens (required; DEFAULT_MAX_TOKENS if unset)
    stream = true                   ->   "stream": true (SSE with named events)

The answer side (`parse_message`, `classify_anthropic_error`) is in `_anthropic_reply`,
the streamed answer (`AnthropicStreamParser`) in `_anthropic_stream`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import httpx
from msgspec import UNSET

from config import Deployment

from .._chat import (
    AssistantMessage,
    AudioPart,
    ChatCompletion,
    ChatRequest,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    NamedToolChoice,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    UserPart,
    encoder,
)
from .._exceptions import ProviderError, Unsupported
from ._anthropic_reply import classify_anthropic_error, parse_message
from ._anthropic_stream import AnthropicStreamParser
from ._base import HttpRequest, drop_params, unsupported_params
from ._chat_parts import (
    call_arguments,
    check_tool_names,
    function_calls,
    function_tools,
    output_budget,
    refuse_custom_tools,
    split_data_url,
    stop_sequences,
    text_of,
)
from ._toolids import IdRule, conform_tool_ids, pattern_rule

ANTHROPIC_BASE: Final = "https://api.anthropic.com"
ANTHROPIC_VERSION: Final = "2023-06-01"
"""The `anthropic-version` header; a deployment's `api_version` overrides it."""
ANTHROPIC_TOOL_ID: Final[IdRule] = pattern_rule(r"[a-zA-Z0-9_-]+")
"""`tool_use.id` must match ``^[a-zA-Z0-9_-]+$`` (PROVIDERS.md §3.3)."""
ANTHROPIC_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,128}")
"""`tools[].name` must match ``^[a-zA-Z0-9_-]{1,128}$``: no dots, colons or slashes."""
DEFAULT_MAX_TOKENS: Final = 4096
"""Sent when the request sets no output budget: Anthropic requires `max_tokens`."""
ANTHROPIC_PARAMS: Final = frozenset({
    "max_completion_tokens", "max_tokens", "parallel_tool_calls", "stop", "stream",
    "temperature", "tool_choice", "tools", "top_p", "user",
})  # fmt: skip
"""The optional `ChatRequest` fields Anthropic can express; the others are dropped."""

_PROVIDER: Final = "anthropic"
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DOCUMENT_TYPES: Final = frozenset({"application/pdf"})

Block = dict[str, Any]


class AnthropicAdapter:
    """The Anthropic Messages API, for one deployment."""

    __slots__ = (
        "_headers", "_model", "_name", "_stream_headers", "_url", "auth", "supported_params",
    )  # fmt: skip

    def __init__(self, spec: Deployment) -> None:
        self._model = spec.model
        self._name = spec.name
        self.auth: httpx.Auth | None = None
        self.supported_params = ANTHROPIC_PARAMS
        base = (spec.api_base or ANTHROPIC_BASE).rstrip("/")
        # Accept an api_base given with or without the version segment.
        self._url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": spec.api_version or ANTHROPIC_VERSION,
        }
        if spec.api_key is not None:
            headers["x-api-key"] = spec.api_key.reveal()
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers
        self._stream_headers = {**headers, "accept": "text/event-stream"}

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = unsupported_params(request, self.supported_params)
        request = conform_tool_ids(drop_params(request, dropped), ANTHROPIC_TOOL_ID)
        refuse_custom_tools(request, provider=_PROVIDER, deployment=self._name)
        body = messages_body(request, model=self._model, deployment=self._name)
        streaming = request.stream is True
        if streaming:
            body["stream"] = True
        return HttpRequest(
            method="POST",
            url=self._url,
            headers=self._stream_headers if streaming else self._headers,
            body=encoder.encode(body),
            dropped_params=dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_message(status, headers, body, model=self._model)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_anthropic_error(status, headers, body)

    def stream_parser(self) -> AnthropicStreamParser:
        """A fresh parser for one streamed attempt."""
        return AnthropicStreamParser(model=self._model)


def messages_body(request: ChatRequest, *, model: str, deployment: str) -> dict[str, Any]:
    """The Messages API body for `request` (already stripped of unsupported parameters)."""
    names = check_tool_names(
        request,
        ANTHROPIC_TOOL_NAME,
        provider=_PROVIDER,
        deployment=deployment,
        wording="Anthropic tool names must match ^[a-zA-Z0-9_-]{1,128}$",
    )
    system, messages = translate_messages(request.messages, deployment)
    if not messages:
        raise Unsupported(
            deployment, f"{_PROVIDER}: messages has no user or assistant content to send"
        )
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": output_budget(request) or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system
    for name in ("temperature", "top_p"):
        value = getattr(request, name)
        if isinstance(value, int | float):
            if not 0.0 <= value <= 1.0:
                raise Unsupported(
                    deployment, f"{_PROVIDER}: {name} {value} is outside Anthropic's range 0..1"
                )
            body[name] = value
    stop = stop_sequences(request)
    if stop:
        body["stop_sequences"] = stop
    if isinstance(request.user, str):
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [
            _tool(t.function.name, t.function.description, t.function.parameters, deployment)
            for t in function_tools(request)
        ]
    choice = tool_choice(request, names, deployment)
    if choice is not None:
        body["tool_choice"] = choice
    return body


def translate_messages(
    messages: Iterable[Message], deployment: str
) -> tuple[str | list[Block], list[dict[str, Any]]]:
    """`(system, messages)`: system text hoisted out, turns merged so roles alternate."""
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        match message:
            case SystemMessage(content=content) | DeveloperMessage(content=content):
                system.extend(_text_blocks(content))
            case UserMessage(content=content):
                _add_turn(turns, "user", _user_blocks(content, deployment))
            case AssistantMessage():
                _add_turn(turns, "assistant", _assistant_blocks(message, deployment))
            case ToolMessage(tool_call_id=call_id, content=content):
                result: Block = {"type": "tool_result", "tool_use_id": call_id}
                text = text_of(content)
                if text.strip():  # blank text is rejected; `content` is optional
                    result["content"] = text
                _add_turn(turns, "user", [result])
    if len(system) == 1:
        return system[0]["text"], turns
    return system, turns


def tool_choice(request: ChatRequest, names: frozenset[str], deployment: str) -> Block | None:
    """Anthropic's `tool_choice` for the request's `tool_choice` and `parallel_tool_calls`."""
    choice = request.tool_choice
    if not names:
        if choice is UNSET or choice in ("auto", "none"):
            return None  # nothing to choose among: leaving it out means the same
        raise Unsupported(
            deployment, f"{_PROVIDER}: tool_choice {_choice_text(choice)} needs tools"
        )
    out: Block
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise Unsupported(
                deployment,
                f"{_PROVIDER}: tool_choice names {choice.function.name!r}, which is not in tools",
            )
        out = {"type": "tool", "name": choice.function.name}
    elif choice == "none":
        return {"type": "none"}  # the only form without disable_parallel_tool_use
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "auto" or request.parallel_tool_calls is False:
        out = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    return out


def _choice_text(choice: object) -> str:
    if isinstance(choice, NamedToolChoice):
        return f"{{'function': {choice.function.name!r}}}"
    return repr(choice)


def _add_turn(turns: list[dict[str, Any]], role: str, blocks: list[Block]) -> None:
    if not blocks:
        return  # an empty turn is rejected; its neighbours merge instead
    if turns and turns[-1]["role"] == role:
        blocks = [*turns[-1]["content"], *blocks]
        turns.pop()
    if role == "user":
        # tool_result blocks lead their user turn, answering the assistant turn before it.
        blocks.sort(key=lambda block: block["type"] != "tool_result")
    turns.append({"role": role, "content": blocks})


def _text_blocks(content: str | tuple[TextPart, ...]) -> list[Block]:
    texts = [content] if isinstance(content, str) else [part.text for part in content]
    # Blank text blocks are rejected ("text content blocks must be non-empty").
    return [{"type": "text", "text": text} for text in texts if text.strip()]


def _user_blocks(content: str | tuple[UserPart, ...], deployment: str) -> list[Block]:
    if isinstance(content, str):
        return _text_blocks(content)
    blocks: list[Block] = []
    for index, part in enumerate(content):
        match part:
            case TextPart(text=text):
                blocks.extend(_text_blocks(text))
            case ImagePart(image_url=image):
                blocks.append(_image_block(image.url, index, deployment))
            case FilePart(file=file) if isinstance(file.file_data, str):
                blocks.append(_document_block(file.file_data, index, deployment))
            case FilePart():
                raise Unsupported(
                    deployment,
                    f"{_PROVIDER}: content[{index}] file parts need file_data"
                    " (an OpenAI file_id means nothing to Anthropic)",
                )
            case AudioPart():
                raise Unsupported(
                    deployment, f"{_PROVIDER}: content[{index}] input_audio has no Anthropic form"
                )
    return blocks


def _image_block(url: str, index: int, deployment: str) -> Block:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    data = split_data_url(url)
    if data is None or data[0] not in _IMAGE_TYPES:
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: content[{index}].image_url must be an http(s) URL or a base64"
            f" data: URL of {', '.join(sorted(_IMAGE_TYPES))}",
        )
    media_type, payload = data
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": payload},
    }


def _document_block(file_data: str, index: int, deployment: str) -> Block:
    data = split_data_url(file_data)
    if data is None or data[0] not in _DOCUMENT_TYPES:
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: content[{index}].file.file_data must be a base64 data: URL"
            " of application/pdf",
        )
    media_type, payload = data
    source = {"type": "base64", "media_type": media_type, "data": payload}
    return {"type": "document", "source": source}


def _assistant_blocks(message: AssistantMessage, deployment: str) -> list[Block]:
    blocks: list[Block] = []
    content = message.content
    if isinstance(content, str):
        blocks.extend(_text_blocks(content))
    elif content is not None:
        for part in content:
            text = part.refusal if isinstance(part, RefusalPart) else part.text
            blocks.extend(_text_blocks(text))
    elif isinstance(message.refusal, str):
        blocks.extend(_text_blocks(message.refusal))
    for call in function_calls(message):
        arguments = call_arguments(call, provider=_PROVIDER, deployment=deployment)
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}
        )
    return blocks


def _tool(name: str, description: object, parameters: object, deployment: str) -> dict[str, Any]:
    schema: dict[str, Any] = dict(parameters) if isinstance(parameters, dict) else {}
    # OpenAI allows omitting `parameters` (no arguments); Anthropic needs an object schema.
    schema.setdefault("type", "object")
    if schema["type"] != "object":
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: tools[{name!r}].parameters has type {schema['type']!r};"
            " Anthropic's input_schema must have type 'object'",
        )
    if schema == {"type": "object"}:
        schema["properties"] = {}
    tool: dict[str, Any] = {"name": name, "input_schema": schema}
    if isinstance(description, str) and description:
        tool["description"] = description
    return tool
