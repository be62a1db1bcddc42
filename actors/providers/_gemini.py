"""Google Gemini generateContent (PROVIDERS.md §6): OpenAI chat in, Gemini request out.

    OpenAI chat                          Gemini generateContent
    system / developer messages     ->   `systemInstruction.parts`
    user text, image, audio, file   ->   `text` / `inlineData` parts of a "user" turn
    assistant text + `tool_calls`   ->   a "model" turn of `text` / `functionCall` parts, each
                                         call signed with the `thoughtSignature` its answer
                                         gave (`extra_content.google.thought_signature`)
    tool messages (consecutive)     ->   ONE "user" turn of `functionResponse` parts, each
                                         named after the assistant call it answers
    legacy functions / function_call / role "function"
                                    ->   as tools / tool_choice / tool messages
    tools                           ->   [{"functionDeclarations": [...]}] (JSON schema as-is
                                         in `parametersJsonSchema`)
    tool_choice auto/required/none  ->   functionCallingConfig mode AUTO / ANY / NONE
    tool_choice {"function": X}     ->   mode ANY + allowedFunctionNames [X]
    sampling, output budget, stop, n, seed, penalties, response_format, logprobs,
    reasoning_effort                ->   `generationConfig` (see `GEMINI_TABLE`)
    service_tier                    ->   `serviceTier`
    stream = true                   ->   POST :streamGenerateContent?alt=sse (same body)

Tool-call ids travel as `functionCall.id` / `functionResponse.id` (Gemini echoes them);
the answer side (`parse_generate_response`, `classify_gemini_error`) is in `_gemini_reply`,
the streamed answer (`GeminiStreamParser`) in `_gemini_stream`.
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
    FunctionMessage,
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
from ._base import (
    Handling,
    HttpRequest,
    ParamRow,
    ParamTable,
    drop_params,
    params_to_drop,
    supported_by,
)
from ._chat_parts import (
    call_arguments,
    check_tool_names,
    function_calls,
    function_tools,
    json_object_or_none,
    refuse_custom_tools,
    split_data_url,
    text_of,
)
from ._gemini_extras import signature_of
from ._gemini_params import (
    CACHE_HINTS,
    GEMINI_TABLE,
    Thinking,
    generation_config,
    has_cache_hints,
    service_tier,
    thinking_style,
)
from ._gemini_reply import classify_gemini_error, parse_generate_response
from ._gemini_stream import GeminiStreamParser
from ._legacy import functions_as_tools, refuse_function_message
from ._toolids import IdRule, conform_tool_ids, pattern_rule

GEMINI_BASE: Final = "https://generativelanguage.googleapis.com"
GEMINI_API_VERSION: Final = "v1beta"
"""The path's version segment; a deployment's `api_version` overrides it."""
GEMINI_TOOL_ID: Final[IdRule] = pattern_rule(r".+")
"""`functionCall.id` is optional and free-form: only an empty id is replaced (§6.3)."""
GEMINI_TOOL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}")
"""`FunctionDeclaration.name`: a letter or `_` first, then ``a-zA-Z0-9_.:-``, 128 at most."""
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
"""Google's documented `thoughtSignature` for calls Gemini did not sign (§6.3).

Gemini 3 rejects a model turn whose first `functionCall` part has no signature. A call
Gemini made comes back with its own signature (the client keeps the tool call's
`extra_content`); history from another provider, or a client that dropped
`extra_content`, has none, and only such a turn gets this placeholder.
"""

_PROVIDER: Final = "gemini"
_MODES: Final[Mapping[str, str]] = {"auto": "AUTO", "required": "ANY", "none": "NONE"}

Part = dict[str, Any]


class GeminiAdapter:
    """The Gemini Developer API's generateContent, for one deployment."""

    __slots__ = (
        "_headers", "_model", "_name", "_stream_url", "_thinking", "_url", "auth",
        "param_table", "supported_params",
    )  # fmt: skip

    def __init__(self, spec: Deployment) -> None:
        self._model = spec.model.removeprefix("models/")
        self._name = spec.name
        self.auth: httpx.Auth | None = None
        self._thinking = thinking_style(self._model)
        self.param_table: ParamTable = (
            GEMINI_TABLE
            if self._thinking
            else {
                **GEMINI_TABLE,
                "reasoning_effort": ParamRow(Handling.DROPPED, "this model does not think"),
            }
        )
        self.supported_params = supported_by(self.param_table)
        base = (spec.api_base or GEMINI_BASE).rstrip("/")
        version = spec.api_version or GEMINI_API_VERSION
        self._url = f"{base}/{version}/models/{self._model}:generateContent"
        self._stream_url = f"{base}/{version}/models/{self._model}:streamGenerateContent?alt=sse"
        headers = {"content-type": "application/json", "accept": "application/json"}
        if spec.api_key is not None:
            headers["x-goog-api-key"] = spec.api_key.reveal()
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers

    def dropped_params(self, request: ChatRequest) -> tuple[str, ...]:
        return self.build(request).dropped_params

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = params_to_drop(request, self.supported_params)
        request, superseded = functions_as_tools(drop_params(request, dropped))
        if superseded:
            dropped = tuple(sorted({*dropped, *superseded}))
        request = conform_tool_ids(request, GEMINI_TOOL_ID)
        refuse_custom_tools(request, provider=_PROVIDER, deployment=self._name)
        body = generate_body(
            request, deployment=self._name, model=self._model, thinking=self._thinking
        )
        if has_cache_hints(request):
            dropped = tuple(sorted((*dropped, CACHE_HINTS)))
        return HttpRequest(
            method="POST",
            url=self._stream_url if request.stream is True else self._url,
            headers=self._headers,
            body=encoder.encode(body),
            dropped_params=dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_generate_response(status, headers, body, model=self._model)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_gemini_error(status, headers, body)

    def stream_parser(self) -> GeminiStreamParser:
        """A fresh parser for one streamed attempt."""
        return GeminiStreamParser(model=self._model)


def generate_body(
    request: ChatRequest, *, deployment: str, model: str, thinking: Thinking | None
) -> dict[str, Any]:
    """The generateContent body for `request` (already stripped of unsupported parameters,
    legacy functions rewritten as tools) to `model`, which thinks in `thinking`'s terms."""
    names = check_tool_names(
        request,
        GEMINI_TOOL_NAME,
        provider=_PROVIDER,
        deployment=deployment,
        wording="Gemini function names start with a letter or '_' and use a-zA-Z0-9_.:- (128 max)",
    )
    system, contents = translate_messages(request.messages, deployment)
    if not contents:
        raise Unsupported(
            deployment, f"{_PROVIDER}: messages has no user or assistant content to send"
        )
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        declarations = []
        for tool in function_tools(request):
            declaration: dict[str, Any] = {"name": tool.function.name}
            if tool.function.description:
                declaration["description"] = tool.function.description
            if tool.function.parameters:
                # JSON schema as-is: `parameters` takes only an OpenAPI subset and answers
                # 400 for `additionalProperties`, `$ref`, ... (§6.2).
                declaration["parametersJsonSchema"] = tool.function.parameters
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
    config = tool_config(request, names, deployment)
    if config is not None:
        body["toolConfig"] = config
    generation = generation_config(request, model, thinking, deployment)
    if generation:
        body["generationConfig"] = generation
    tier = service_tier(request, deployment)
    if tier is not None:
        body["serviceTier"] = tier
    return body


def translate_messages(
    messages: Iterable[Message], deployment: str
) -> tuple[list[Part], list[dict[str, Any]]]:
    """`(systemInstruction parts, contents)`; function responses named from their calls."""
    system: list[Part] = []
    contents: list[dict[str, Any]] = []
    kinds: list[str] = []  # "user", "model" or "responses": what may merge with what
    call_names: dict[str, str] = {}
    for message in messages:
        match message:
            case SystemMessage(content=content) | DeveloperMessage(content=content):
                system.extend(_text_parts(content))
                continue
            case UserMessage(content=content):
                role, kind, parts = "user", "user", _user_parts(content, deployment)
            case AssistantMessage():
                role, kind, parts = "model", "model", _model_parts(message, deployment)
                call_names.update((c.id, c.function.name) for c in function_calls(message))
            case ToolMessage():
                role, kind = "user", "responses"
                parts = [_function_response(message, call_names, deployment)]
            case FunctionMessage():
                refuse_function_message(message, provider=_PROVIDER, deployment=deployment)
        if not parts:
            continue  # Gemini rejects a turn without parts
        if kinds and kinds[-1] == kind:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
            kinds.append(kind)
    for turn in contents:
        if turn["role"] == "model":
            _sign_first_call(turn["parts"])
    return system, contents


def tool_config(
    request: ChatRequest, names: frozenset[str], deployment: str
) -> dict[str, Any] | None:
    """`toolConfig` for the request's `tool_choice` (None: Gemini's default, AUTO)."""
    choice = request.tool_choice
    if choice is UNSET:
        return None
    if not names:
        if choice in ("auto", "none"):
            return None  # nothing to choose among: leaving it out means the same
        shown = choice.function.name if isinstance(choice, NamedToolChoice) else choice
        raise Unsupported(deployment, f"{_PROVIDER}: tool_choice {shown!r} needs tools")
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise Unsupported(
                deployment,
                f"{_PROVIDER}: tool_choice names {choice.function.name!r}, which is not in tools",
            )
        calling = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    else:
        assert isinstance(choice, str)  # refuse_custom_tools ran first
        calling = {"mode": _MODES[choice]}
    return {"functionCallingConfig": calling}


def _text_parts(content: str | tuple[TextPart, ...]) -> list[Part]:
    texts = [content] if isinstance(content, str) else [part.text for part in content]
    return [{"text": text} for text in texts if text]


def _user_parts(content: str | tuple[UserPart, ...], deployment: str) -> list[Part]:
    if isinstance(content, str):
        return _text_parts(content)
    parts: list[Part] = []
    for index, part in enumerate(content):
        match part:
            case TextPart(text=text):
                parts.extend(_text_parts(text))
            case ImagePart(image_url=image):
                parts.append(_inline(image.url, f"content[{index}].image_url", deployment))
            case AudioPart(input_audio=audio):
                mime = f"audio/{audio.format.lower()}"
                parts.append({"inlineData": {"mimeType": mime, "data": audio.data}})
            case FilePart(file=file) if isinstance(file.file_data, str):
                parts.append(_inline(file.file_data, f"content[{index}].file", deployment))
            case FilePart():
                raise Unsupported(
                    deployment,
                    f"{_PROVIDER}: content[{index}] file parts need file_data"
                    " (an OpenAI file_id means nothing to Gemini)",
                )
    return parts


def _inline(url: str, where: str, deployment: str) -> Part:
    data = split_data_url(url)
    if data is None:
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: {where} must be a base64 data: URL (Gemini does not fetch URLs)",
        )
    return {"inlineData": {"mimeType": data[0], "data": data[1]}}


def _model_parts(message: AssistantMessage, deployment: str) -> list[Part]:
    parts: list[Part] = []
    content = message.content
    if isinstance(content, str):
        parts.extend(_text_parts(content))
    elif content is not None:
        for part in content:
            text = part.refusal if isinstance(part, RefusalPart) else part.text
            parts.extend(_text_parts(text))
    elif isinstance(message.refusal, str):
        parts.extend(_text_parts(message.refusal))
    for call in function_calls(message):
        arguments = call_arguments(call, provider=_PROVIDER, deployment=deployment)
        signed: Part = {
            "functionCall": {"id": call.id, "name": call.function.name, "args": arguments}
        }
        signature = signature_of(call)
        if signature is not None:
            signed["thoughtSignature"] = signature
        parts.append(signed)
    return parts


def _function_response(
    message: ToolMessage, call_names: Mapping[str, str], deployment: str
) -> Part:
    name = call_names.get(message.tool_call_id)
    if name is None:
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: tool message tool_call_id {message.tool_call_id!r} answers no earlier"
            " assistant tool call (Gemini needs the function name it answers)",
        )
    text = text_of(message.content)
    # `response` must be a JSON object; Google's convention for anything else is
    # {"output": ...} ("output" and "error" keys, per FunctionResponse.response).
    response = json_object_or_none(text)
    if response is None:
        response = {"output": text}
    return {"functionResponse": {"id": message.tool_call_id, "name": name, "response": response}}


def _sign_first_call(parts: list[Part]) -> None:
    """Give an unsigned turn's first call the placeholder; a signed turn goes as it came."""
    calls = [part for part in parts if "functionCall" in part]
    if calls and not any("thoughtSignature" in part for part in calls):
        calls[0]["thoughtSignature"] = SKIP_SIGNATURE
