"""Mistral chat completions (PROVIDERS.md §5): OpenAI-like, but closed and strict.

Mistral answers any field it does not declare with a 422 (`extra_forbidden`, at
any depth), so the body is built key by key from an allow-list, never by
forwarding the OpenAI request. Its tokenizer validator is strict too: tool-call
ids are exactly nine alphanumerics, a `user` turn may not follow a `tool` turn,
and the last message must be user or tool (or an assistant `prefix`).
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
    FunctionDefinition,
    ImagePart,
    Message,
    NamedToolChoice,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    encoder,
)
from .._exceptions import ProviderError, Unsupported
from ._base import HttpRequest, drop_params, unsupported_params
from ._chat_parts import function_calls, function_tools, refuse_custom_tools
from ._mistral_reply import classify_mistral_error, parse_mistral
from ._mistral_stream import MistralStreamParser
from ._toolids import IdRule, conform_tool_ids, pattern_rule

MISTRAL_BASE: Final = "https://api.mistral.ai/v1"
MISTRAL_TOOL_ID: Final[IdRule] = pattern_rule(r"[a-zA-Z0-9]{9}")
"""Exactly nine alphanumerics, on calls and results alike (PROVIDERS.md §5.3)."""
MISTRAL_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""mistral-common's function-name rule."""
MISTRAL_PARAMS: Final = frozenset(
    {"frequency_penalty", "max_completion_tokens", "max_tokens", "n", "parallel_tool_calls"}
    | {"presence_penalty", "response_format", "seed", "stop", "stream", "temperature"}
    | {"tool_choice", "tools", "top_p"}
)
"""Optional request fields Mistral can take (§5.2); `seed` and `max_completion_tokens` are renamed.

Not here, so dropped: logit_bias, logprobs, top_logprobs, user, stream_options (all 422)
and reasoning_effort (Mistral's takes only "none"/"high", not OpenAI's levels).
"""
BRIDGE_TEXT: Final = "OK."
"""An assistant turn inserted between a tool result and a user turn, which Mistral refuses."""

_SCALARS: Final = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
    ("n", "n"),
    ("seed", "random_seed"),
    ("stream", "stream"),
)
_JSON_SCHEMA_KEYS: Final = ("name", "schema", "description", "strict")


def mistral_body(request: ChatRequest, model: str, deployment: str) -> dict[str, Any]:
    """The allow-listed Mistral body for `request` (ids already conformed)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": mistral_messages(request.messages, deployment),
    }
    for ours, theirs in _SCALARS:
        value = getattr(request, ours)
        if value is not UNSET and value is not None:  # null means "not set" here
            body[theirs] = value
    max_tokens = request.max_completion_tokens
    if max_tokens is UNSET or max_tokens is None:
        max_tokens = request.max_tokens
    if max_tokens is not UNSET and max_tokens is not None:
        body["max_tokens"] = max_tokens
    if request.stop is not UNSET and request.stop is not None:
        body["stop"] = request.stop if isinstance(request.stop, str) else list(request.stop)
    if request.response_format is not UNSET:
        fmt: dict[str, Any] = {"type": request.response_format.type}
        if request.response_format.json_schema is not UNSET:
            schema = request.response_format.json_schema
            fmt["json_schema"] = {k: schema[k] for k in _JSON_SCHEMA_KEYS if k in schema}
        body["response_format"] = fmt
    if request.tools:
        body["tools"] = [_tool(tool.function) for tool in function_tools(request)]
        if request.tool_choice is not UNSET:
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.parallel_tool_calls is not UNSET:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    return body


def mistral_messages(messages: Iterable[Message], deployment: str) -> list[dict[str, Any]]:
    """Mistral messages in an order its validator accepts; raises `Unsupported`."""
    names: dict[str, str] = {}  # tool-call id -> function name, for the tool messages
    out: list[dict[str, Any]] = []
    for message in messages:
        match message:
            case SystemMessage() | DeveloperMessage():
                out.append({"role": "system", "content": _text_content(message.content)})
            case UserMessage():
                out.append({"role": "user", "content": _user_content(message.content, deployment)})
            case AssistantMessage():
                converted = _assistant(message)
                if converted is None:
                    continue  # empty: nothing to say, and an empty turn is refused
                for call in function_calls(message):
                    names[call.id] = call.function.name
                out.append(converted)
            case ToolMessage():
                tool: dict[str, Any] = {
                    "role": "tool",
                    "content": "".join(_texts(message.content)),
                    "tool_call_id": message.tool_call_id,
                }
                if message.tool_call_id in names:
                    tool["name"] = names[message.tool_call_id]
                out.append(tool)
    bridged: list[dict[str, Any]] = []
    for turn in out:
        if bridged and bridged[-1]["role"] == "tool" and turn["role"] in ("user", "system"):
            # "Unexpected role 'user' after role 'tool'" (code 3230): the model speaks first.
            bridged.append({"role": "assistant", "content": BRIDGE_TEXT})
        bridged.append(turn)
    last = bridged[-1] if bridged else None
    if last is not None and last["role"] == "assistant" and "tool_calls" not in last:
        last["prefix"] = True  # an assistant last is a prefill, which Mistral takes as prefix
    return bridged


def check_tool_names(request: ChatRequest, deployment: str) -> None:
    """Raise `Unsupported` when mistral-common's name rule rejects a name the request sends."""
    names = [tool.function.name for tool in function_tools(request)]
    for message in request.messages:
        if isinstance(message, AssistantMessage):
            names += [call.function.name for call in function_calls(message)]
    for name in names:
        if MISTRAL_TOOL_NAME.fullmatch(name) is None:
            raise Unsupported(
                deployment, f"mistral: tool name {name!r} does not match [a-zA-Z0-9_-]{{1,64}}"
            )


# -- the adapter -------------------------------------------------------------------


class MistralAdapter:
    """Mistral's `POST /v1/chat/completions` with Bearer auth."""

    __slots__ = (
        "_headers",
        "_model",
        "_name",
        "_stream_headers",
        "_url",
        "auth",
        "supported_params",
    )

    def __init__(self, spec: Deployment) -> None:
        self._name = spec.name
        self._model = spec.model
        self._url = f"{(spec.api_base or MISTRAL_BASE).rstrip('/')}/chat/completions"
        self.auth: httpx.Auth | None = None
        self.supported_params = MISTRAL_PARAMS
        headers = {"content-type": "application/json", "accept": "application/json"}
        if spec.api_key is not None and spec.api_key.reveal():
            headers["authorization"] = f"Bearer {spec.api_key.reveal()}"
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers
        self._stream_headers = {**headers, "accept": "text/event-stream"}

    def dropped_params(self, request: ChatRequest) -> tuple[str, ...]:
        return unsupported_params(request, self.supported_params)

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = unsupported_params(request, self.supported_params)
        request = conform_tool_ids(drop_params(request, dropped), MISTRAL_TOOL_ID)
        refuse_custom_tools(request, provider="mistral", deployment=self._name)
        check_tool_names(request, self._name)
        return HttpRequest(
            method="POST",
            url=self._url,
            headers=self._stream_headers if request.stream is True else self._headers,
            body=encoder.encode(mistral_body(request, self._model, self._name)),
            dropped_params=dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_mistral(body)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_mistral_error(status, headers, body)

    def stream_parser(self) -> MistralStreamParser:
        """A fresh translator of Mistral's SSE stream (`stream: true` is in the body)."""
        return MistralStreamParser(model=self._model)


# -- helpers -----------------------------------------------------------------------


def _texts(content: str | tuple[Any, ...] | None) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [part.text if isinstance(part, TextPart) else part.refusal for part in content]


def _text_content(content: str | tuple[TextPart, ...]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [{"type": "text", "text": part.text} for part in content]


def _user_content(content: str | tuple[Any, ...], deployment: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    chunks: list[dict[str, Any]] = []
    for part in content:
        match part:
            case TextPart(text=text):
                chunks.append({"type": "text", "text": text})
            case ImagePart(image_url=image):
                url: dict[str, Any] = {"url": image.url}
                if image.detail is not UNSET:
                    url["detail"] = image.detail
                chunks.append({"type": "image_url", "image_url": url})
            case AudioPart(input_audio=audio):
                chunks.append({"type": "input_audio", "input_audio": audio.data})
            case FilePart(file=file) if file.file_id is not UNSET:
                chunks.append({"type": "file", "file_id": file.file_id})
            case _:
                raise Unsupported(
                    deployment, "mistral: file parts need a file_id (file_data is not sent)"
                )
    return chunks


def _assistant(message: AssistantMessage) -> dict[str, Any] | None:
    text = "".join(_texts(message.content))
    calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for call in function_calls(message)
    ]
    if not text and not calls:
        return None
    out: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        out["tool_calls"] = calls
    return out


def _tool(function: FunctionDefinition) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": function.name}
    if function.description is not UNSET:
        spec["description"] = function.description
    # `parameters` is required by Mistral, optional in OpenAI.
    parameters = function.parameters if function.parameters is not UNSET else None
    spec["parameters"] = parameters or {"type": "object", "properties": {}}
    if isinstance(function.strict, bool):
        spec["strict"] = function.strict
    return {"type": "function", "function": spec}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "function": {"name": choice.function.name}}
    return "any" if choice == "required" else choice
