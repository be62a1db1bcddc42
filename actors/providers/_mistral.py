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
    FunctionMessage,
    ImagePart,
    Message,
    NamedToolChoice,
    Prediction,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    encoder,
)
from .._exceptions import ProviderError, Unsupported
from ._base import (
    Handling,
    HttpRequest,
    ParamRow,
    drop_params,
    param_table,
    params_to_drop,
    supported_by,
)
from ._chat_parts import function_calls, function_tools, refuse_custom_tools
from ._legacy import functions_as_tools, refuse_function_message
from ._mistral_reply import classify_mistral_error, parse_mistral
from ._mistral_stream import MistralStreamParser
from ._openai_params import Extras, strip_extras
from ._toolids import IdRule, conform_tool_ids, pattern_rule

MISTRAL_BASE: Final = "https://api.mistral.ai/v1"
MISTRAL_TOOL_ID: Final[IdRule] = pattern_rule(r"[a-zA-Z0-9]{9}")
"""Exactly nine alphanumerics, on calls and results alike (PROVIDERS.md §5.3)."""
MISTRAL_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""mistral-common's function-name rule."""
_SENT: Final = ParamRow(Handling.SENT)
_NOT_IN_API: Final = "not in Mistral's chat API (422 `extra_forbidden`)"
MISTRAL_TABLE: Final = param_table({
    "frequency_penalty": _SENT,
    "presence_penalty": _SENT,
    "temperature": _SENT,
    "top_p": _SENT,
    "n": _SENT,
    "stop": _SENT,
    "stream": ParamRow(Handling.SENT, "usage always comes in the last chunk"),
    "max_tokens": _SENT,
    "max_completion_tokens": ParamRow(Handling.MAPPED, "`max_tokens` (wins over `max_tokens`)"),
    "seed": ParamRow(Handling.MAPPED, "`random_seed`"),
    "response_format": ParamRow(
        Handling.SENT, "`json_schema` without a `schema` goes as `json_object`"
    ),
    "tools": ParamRow(Handling.SENT, "function tools; a missing `parameters` is sent empty"),
    "tool_choice": ParamRow(Handling.MAPPED, "`tool_choice` (`required` as `any`)"),
    "parallel_tool_calls": _SENT,
    "reasoning_effort": ParamRow(Handling.MAPPED, "`reasoning_effort` (`max` as `xhigh`)"),
    "metadata": ParamRow(Handling.SENT, "Mistral's own `metadata`"),
    "prediction": ParamRow(Handling.MAPPED, "`prediction` (text parts joined)"),
    "prompt_cache_key": _SENT,
    "functions": ParamRow(Handling.MAPPED, "`tools` (single calls: `parallel_tool_calls` false)"),
    "function_call": ParamRow(Handling.MAPPED, "`tool_choice`"),
    "logit_bias": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "logprobs": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "top_logprobs": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "user": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "safety_identifier": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "stream_options": ParamRow(Handling.DROPPED, "usage is always streamed; 422 if sent"),
    "store": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "modalities": ParamRow(Handling.DROPPED, "text output only"),
    "audio": ParamRow(Handling.DROPPED, "text output only"),
    "service_tier": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "verbosity": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "prompt_cache_retention": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "prompt_cache_options": ParamRow(Handling.DROPPED, _NOT_IN_API),
    "web_search_options": ParamRow(Handling.DROPPED, "web search is an Agents API tool"),
    "moderation": ParamRow(Handling.DROPPED, "Mistral's `guardrails` take other policies"),
})  # fmt: skip
"""How Mistral's chat API (mistralai SDK `ChatCompletionRequest`, §5.2) takes each parameter."""
MISTRAL_PARAMS: Final = supported_by(MISTRAL_TABLE)
_EXTRAS: Final = Extras(
    cache_control=True, prompt_cache_breakpoint=True, replayed_reasoning=True, extra_content=True
)
"""Message-level extensions Mistral's closed schema refuses: left out and named."""
_EFFORTS: Final = {"max": "xhigh"}
"""OpenAI's reasoning efforts Mistral does not name, as its nearest level."""
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
_NAMED_ROLES: Final = (SystemMessage, DeveloperMessage, UserMessage, AssistantMessage)


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
        body["response_format"] = _response_format(
            request.response_format.type, request.response_format.json_schema
        )
    if isinstance(request.reasoning_effort, str):
        effort = request.reasoning_effort
        body["reasoning_effort"] = _EFFORTS.get(effort, effort)
    if request.metadata:
        body["metadata"] = request.metadata
    if isinstance(request.prediction, Prediction):
        body["prediction"] = {"type": "content", "content": _joined(request.prediction.content)}
    if isinstance(request.prompt_cache_key, str):
        body["prompt_cache_key"] = request.prompt_cache_key
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
            case FunctionMessage():
                refuse_function_message(message, provider="mistral", deployment=deployment)
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
        "param_table",
        "supported_params",
    )

    def __init__(self, spec: Deployment) -> None:
        self._name = spec.name
        self._model = spec.model
        self._url = f"{(spec.api_base or MISTRAL_BASE).rstrip('/')}/chat/completions"
        self.auth: httpx.Auth | None = None
        self.param_table = MISTRAL_TABLE
        self.supported_params = MISTRAL_PARAMS
        headers = {"content-type": "application/json", "accept": "application/json"}
        if spec.api_key is not None and spec.api_key.reveal():
            headers["authorization"] = f"Bearer {spec.api_key.reveal()}"
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers
        self._stream_headers = {**headers, "accept": "text/event-stream"}

    def dropped_params(self, request: ChatRequest) -> tuple[str, ...]:
        return self.build(request).dropped_params

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = params_to_drop(request, self.supported_params)
        request = drop_params(request, dropped)
        request, superseded = functions_as_tools(request)
        request, stripped = strip_extras(request, _EXTRAS)
        unsent = (*superseded, *stripped, *_unsent_message_fields(request))
        if unsent:
            dropped = tuple(sorted({*dropped, *unsent}))
        request = conform_tool_ids(request, MISTRAL_TOOL_ID)
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
                if image.detail is not UNSET:  # Mistral has no "original": its best is "high"
                    url["detail"] = "high" if image.detail == "original" else image.detail
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
    if not text and isinstance(message.refusal, str):
        text = message.refusal  # what the model said, in the one field Mistral has for it
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


def _response_format(kind: str, json_schema: Any) -> dict[str, Any]:
    if kind != "json_schema" or json_schema is UNSET:
        return {"type": kind}
    if "schema" not in json_schema:  # Mistral requires one; without it this is JSON mode
        return {"type": "json_object"}
    return {
        "type": kind,
        "json_schema": {k: json_schema[k] for k in _JSON_SCHEMA_KEYS if k in json_schema},
    }


def _joined(content: str | tuple[TextPart, ...]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


def _unsent_message_fields(request: ChatRequest) -> tuple[str, ...]:
    """Message fields Mistral's schema has no place for (its messages take no `name`)."""
    names: set[str] = set()
    for message in request.messages:
        if isinstance(message, _NAMED_ROLES) and message.name is not UNSET:
            names.add("messages[].name")
        if isinstance(message, AssistantMessage) and message.audio:
            names.add("messages[].audio")
    return tuple(sorted(names))
