"""`GeminiFake`: a strict `:generateContent` and `:streamGenerateContent`, plus builders
for Google RPC errors (§6)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ._asgi import Reply, json_reply
from ._base import FakeProvider
from ._chat_reply import _example
from ._gemini_rules import check_generate_request, thought_signature
from ._gemini_stream import gemini_logprobs, gemini_response_chunks
from ._recording import RecordedRequest
from ._script import Error, Success, error, sse

GENERATE_PATH: Final = re.compile(
    r"^/(v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$"
)
_NO_CALLER: Final = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
_KEY_INVALID: Final = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}


class GeminiFake(FakeProvider):
    """Strict fake of Gemini's `generateContent` (PROVIDERS.md §6), a raw ASGI app.

        fake = GeminiFake(api_key="gm-test")
        async with serve_app(fake) as url:  # deployment api_base = url

    Checks, in order: route (`POST /v1beta/models/{model}:generateContent`, else an HTML
    404), the key in `x-goog-api-key` or `?key=` (missing: 403 PERMISSION_DENIED; wrong:
    400 INVALID_ARGUMENT `API_KEY_INVALID`), a JSON object body, every rule of
    `check_generate_request` (400 INVALID_ARGUMENT), and `models` when given (404
    NOT_FOUND).  Accepted requests consume one scripted directive; the default reply is
    `"<name>: <last user text>"`, or a `functionCall` of the function that mode ANY
    forces, one candidate per `candidateCount`.  Calls carry an `id` only with
    `call_ids=True` (the Developer API usually mints none).  On `gemini-3*` models the first
    call carries the `thoughtSignature` of `thought_signature` (which the rules then
    demand back), and a text answer's last part a signature too, as Gemini 3 does.  With
    `thinkingConfig.includeThoughts` a thought summary part comes first (and
    `thoughtsTokenCount`); with `responseLogprobs` each candidate has a `logprobsResult`.
    A `Success` directive's `finish_reason` is sent as the raw `finishReason` (`"SAFETY"`,
    `"MAX_TOKENS"`, `"MALFORMED_FUNCTION_CALL"`...).
    `:streamGenerateContent` answers the same as `gemini_response_chunks` (§6.6): SSE `data:`
    events with `?alt=sse`, else one JSON array; script failures with `stream(sse(...))`.
    """

    def __init__(
        self,
        *,
        api_key: str = "gm-test",
        name: str = "gemini",
        models: Iterable[str] | None = None,
        call_ids: bool = False,
    ) -> None:
        super().__init__(name=name)
        self.api_key = api_key
        self.models = None if models is None else frozenset(models)
        self.call_ids = call_ids
        self._served = 0

    def _check(self, record: RecordedRequest) -> Reply | None:
        route = GENERATE_PATH.match(record.path)
        if record.method != "POST" or route is None:
            page = f"<html><body>The requested URL {record.path} was not found.</body></html>"
            return Reply(status=404, body=page.encode(), content_type="text/html; charset=UTF-8")
        key = record.headers.get("x-goog-api-key") or record.query.get("key")
        if key is None:
            return json_reply(403, gemini_body(403, "PERMISSION_DENIED", _NO_CALLER))
        if key != self.api_key:
            message = "API key not valid. Please pass a valid API key."
            body = gemini_body(400, "INVALID_ARGUMENT", message, [_KEY_INVALID])
            return json_reply(400, body)
        media_type = record.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json" or not isinstance(record.json, dict):
            message = "Invalid JSON payload received. Unexpected token."
            return json_reply(400, gemini_body(400, "INVALID_ARGUMENT", message))
        version, model, _ = route.groups()
        invalid = check_generate_request(record.json, model=model)
        if invalid is not None:
            return json_reply(400, invalid.body())
        if self.models is not None and model not in self.models:
            message = (
                f"models/{model} is not found for API version {version}, or is not supported"
                " for generateContent. Call ListModels to see the list of available models"
                " and their supported methods."
            )
            return json_reply(404, gemini_body(404, "NOT_FOUND", message))
        return None

    def _answer(self, record: RecordedRequest, directive: Success) -> Reply:
        self._served += 1
        body: Mapping[str, Any] = record.json
        model = GENERATE_PATH.match(record.path).group(2)  # type: ignore[union-attr]
        serial = hashlib.sha256(f"{self.name}:{self._served}".encode()).hexdigest()[:24]
        generation = body.get("generationConfig") or body.get("generation_config") or {}
        count = int(generation.get("candidateCount") or generation.get("candidate_count") or 1)
        parts = self._parts(body, directive, model, serial)
        thinking = generation.get("thinkingConfig") or {}
        thought = f"Thinking about {_last_user_text(body.get('contents') or [])!r}."
        if thinking.get("includeThoughts"):
            parts = [{"text": thought, "thought": True}, *parts]
        candidates: list[dict[str, Any]] = [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": directive.finish_reason or "STOP",
                "index": index,
            }
            for index in range(count)
        ]
        if generation.get("responseLogprobs"):
            text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
            for candidate in candidates:
                candidate["logprobsResult"] = gemini_logprobs(text, generation.get("logprobs", 0))
                candidate["avgLogprobs"] = -0.25
        prompt = max(1, len(json.dumps(body.get("contents"))) // 4)
        said = max(1, len(json.dumps(parts)) // 8)
        thoughts = len(thought) // 4 if thinking.get("includeThoughts") else 0
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": said * count,
            "totalTokenCount": prompt + (said + thoughts) * count,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts * count
        answer = {
            "candidates": candidates,
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": serial,
        }
        if record.path.endswith(":streamGenerateContent"):
            chunks = gemini_response_chunks(answer)
            if record.query.get("alt") != "sse":
                return json_reply(200, chunks, directive.headers)
            return Reply(
                status=200,
                headers=directive.headers,
                chunks=tuple(sse(chunk) for chunk in chunks),
                content_type="text/event-stream",
            )
        return json_reply(200, answer, directive.headers)

    def _parts(
        self, body: Mapping[str, Any], directive: Success, model: str, serial: str
    ) -> list[dict[str, Any]]:
        def call(index: int, name: str, arguments: Any) -> dict[str, Any]:
            function: dict[str, Any] = {"name": name, "args": arguments}
            if self.call_ids:
                function = {"id": f"fc_{serial[:8]}{index}", **function}
            part: dict[str, Any] = {"functionCall": function}
            if gemini_3 and index == 0:
                part["thoughtSignature"] = thought_signature(model, name, arguments)
            return part

        def signed(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if gemini_3 and parts and "text" in parts[-1]:  # Gemini 3 signs a text answer's end
                parts[-1] = {**parts[-1], "thoughtSignature": thought_signature(model, "", None)}
            return parts

        gemini_3 = model.startswith("gemini-3")
        if directive.content is not None or directive.tool_calls is not None:
            parts: list[dict[str, Any]] = []
            if directive.content is not None:
                parts.append({"text": directive.content})
            for index, (name, arguments) in enumerate(directive.tool_calls or ()):
                parts.append(call(index, name, json.loads(arguments)))
            return signed(parts)
        forced = _forced(body)
        if forced is not None:
            schema = forced.get("parametersJsonSchema") or forced.get("parameters") or {}
            return [call(0, forced["name"], _example(schema))]
        return signed([{"text": f"{self.name}: {_last_user_text(body.get('contents') or [])}"}])


def _forced(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The declaration that mode ANY makes the model call, if any."""
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    declarations = [
        declaration
        for tool in body.get("tools") or ()
        for declaration in tool.get("functionDeclarations") or ()
    ]
    if config.get("mode") != "ANY" or not declarations:
        return None
    allowed = config.get("allowedFunctionNames") or [declarations[0]["name"]]
    forced: Mapping[str, Any] = next(d for d in declarations if d["name"] == allowed[0])
    return forced


def _last_user_text(contents: Sequence[Mapping[str, Any]]) -> str:
    for content in reversed(contents):
        texts = [part["text"] for part in content.get("parts", ()) if "text" in part]
        if content.get("role", "user") == "user" and texts:
            return "".join(texts)
    return ""


def gemini_body(
    code: int, status: str, message: str, details: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Google's RPC error body: `{"error": {"code", "message", "status", "details"}}`."""
    error_object: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error_object["details"] = list(details)
    return {"error": error_object}


def gemini_error(
    code: int,
    status: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Error:
    """Any Google RPC error as a scripted directive."""
    return error(code, gemini_body(code, status, message, details), headers)


def gemini_rate_limited(*, retry_delay: str | None = "7s", per_day: bool = False) -> Error:
    """429 RESOURCE_EXHAUSTED with QuotaFailure and (optionally) RetryInfo details (§6.4)."""
    quota = (
        "GenerateRequestsPerDayPerProjectPerModel"
        if per_day
        else ("GenerateRequestsPerMinutePerProjectPerModel")
    )
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_requests",
                         "quotaId": quota}]},
    ]  # fmt: skip
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": retry_delay})  # fmt: skip
    message = (
        "You exceeded your current quota, please check your plan and billing details."
        f" Please retry in {retry_delay or '1s'}."
    )
    return gemini_error(429, "RESOURCE_EXHAUSTED", message, details)


def gemini_unavailable() -> Error:
    """503 UNAVAILABLE: the model is overloaded (§6.4)."""
    return gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def gemini_context_exceeded(*, tokens: int = 1196265, limit: int = 1048576) -> Error:
    """400 INVALID_ARGUMENT for a prompt over the context window (§6.4)."""
    message = (
        f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({limit})."
    )
    return gemini_error(400, "INVALID_ARGUMENT", message)


def gemini_prompt_blocked(reason: str = "SAFETY") -> Error:
    """HTTP 200 with no candidates and `promptFeedback.blockReason` (§6.4)."""
    body = {
        "promptFeedback": {"blockReason": reason},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "blocked0",
    }
    return error(200, body)
