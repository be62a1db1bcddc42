"""`OpenAIFake`: a strict `POST /v1/chat/completions`, plus builders for OpenAI's errors."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._asgi import Reply, json_reply
from ._base import FakeProvider
from ._chat_reply import Shape, completion, plan_turn, sse_chunks
from ._chat_rules import OPENAI_DIALECT, OPENAI_PARAMS, Dialect, check_chat_request
from ._recording import RecordedRequest
from ._script import Error, Success, error

CHAT_PATH: Final = "/v1/chat/completions"

_NO_KEY: Final = (
    "You didn't provide an API key. You need to provide your API key in an Authorization"
    " header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field"
    " (with blank username) if you're accessing the API from your browser and are prompted for"
    " a username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)
_BAD_JSON: Final = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't"
    " using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was"
    " sent was not valid JSON. If you have trouble figuring out how to fix this, please contact"
    " us through our help center at help.openai.com.)"
)


class OpenAIFake(FakeProvider):
    """Strict fake of OpenAI Chat Completions (PROVIDERS.md §1), a raw ASGI app.

        fake = OpenAIFake(api_key="sk-test")
        async with serve_app(fake) as url:  # client base_url = url + "/v1"

    Checks, in order: route (`POST /v1/chat/completions`, else 404 "Invalid URL"),
    `Authorization: Bearer <api_key>` (401), `Content-Type: application/json` and a JSON
    object body (400), then every rule of `check_chat_request` with `accepted_params`
    as the top-level allow-list (400 `invalid_request_error`).  Accepted requests consume
    one scripted directive; the default reply echoes `"<name>: <last user text>"`, or
    calls the tool that `tool_choice` forces.  `named_choice_stop` reproduces OpenAI's
    `finish_reason: "stop"` for a named forced tool (§1.6 quirk).
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-test",
        name: str = "openai",
        accepted_params: Iterable[str] = OPENAI_PARAMS,
        named_choice_stop: bool = True,
    ) -> None:
        super().__init__(name=name)
        self.api_key = api_key
        self.accepted_params = frozenset(accepted_params)
        self.named_choice_stop = named_choice_stop
        self._served = 0

    def _check(self, record: RecordedRequest) -> Reply | None:
        if record.method != "POST" or record.path != CHAT_PATH:
            return _openai_error(404, f"Invalid URL ({record.method} {record.path})")
        authorization = record.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return _openai_error(401, _NO_KEY)
        if authorization.removeprefix("Bearer ") != self.api_key:
            presented = _mask(authorization.removeprefix("Bearer "))
            return _openai_error(
                401,
                f"Incorrect API key provided: {presented}. You can find your API key at"
                " https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return check_json_body(record, accepted=self.accepted_params, require_model=True)

    def _answer(self, record: RecordedRequest, directive: Success) -> Reply:
        self._served += 1
        body = record.json
        shape = Shape(
            model=body["model"],
            completion_id=completion_id(self.name, self._served),
            created=int(time.time()),
            top_extra={"service_tier": "default"},
        )
        headers = (
            ("x-request-id", f"req_{shape.completion_id[9:]}"),
            ("openai-processing-ms", "1"),
            *directive.headers,
        )
        return chat_reply(record, directive, shape, headers, self.name, self.named_choice_stop)


def check_json_body(
    record: RecordedRequest,
    *,
    accepted: Iterable[str],
    require_model: bool,
    dialect: Dialect = OPENAI_DIALECT,
) -> Reply | None:
    """The 400 for a body that is not a JSON object or breaks a Chat Completions rule."""
    media_type = record.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" or not isinstance(record.json, dict):
        return _openai_error(400, _BAD_JSON)
    invalid = check_chat_request(
        record.json, accepted=accepted, require_model=require_model, dialect=dialect
    )
    return None if invalid is None else json_reply(400, invalid.body())


def chat_reply(
    record: RecordedRequest,
    directive: Success,
    shape: Shape,
    headers: Iterable[tuple[str, str]],
    speaker: str,
    named_choice_stop: bool,
) -> Reply:
    """A 200 `chat.completion`, or an SSE stream of chunks when the request has `stream`."""
    body: Mapping[str, Any] = record.json
    turn = plan_turn(body, directive, speaker=speaker, named_choice_stop=named_choice_stop)
    if body.get("stream") is True:
        return Reply(
            status=200,
            headers=tuple(headers),
            chunks=sse_chunks(body, turn, shape),
            content_type="text/event-stream; charset=utf-8",
        )
    return json_reply(200, completion(body, turn, shape), headers)


def completion_id(name: str, serial: int) -> str:
    """A deterministic `chatcmpl-...` id, distinct per fake name and request."""
    return "chatcmpl-" + hashlib.sha256(f"{name}:{serial}".encode()).hexdigest()[:24]


def openai_rate_limited(
    *, retry_after: float | None = None, retry_after_ms: int | None = None
) -> Error:
    """OpenAI's 429 `rate_limit_exceeded` (§1.5), with the retry headers you ask for."""
    headers: dict[str, str] = {"x-ratelimit-remaining-requests": "0"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    message = (
        "Rate limit reached for gpt-4o in organization org-fake on tokens per min (TPM):"
        " Limit 30000, Used 29000, Requested 2000. Please try again in 2s."
    )
    return error(429, _error_body(message, "tokens", None, "rate_limit_exceeded"), headers)


def openai_insufficient_quota() -> Error:
    """OpenAI's 429 `insufficient_quota`: fall back, never retry (§1.5)."""
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more"
        " information on this error, read the docs:"
        " https://platform.openai.com/docs/guides/error-codes/api-errors."
    )
    return error(429, _error_body(message, "insufficient_quota", None, "insufficient_quota"))


def openai_context_length_exceeded(*, limit: int = 128000, tokens: int = 130500) -> Error:
    """OpenAI's 400 `context_length_exceeded` (§1.4)."""
    message = (
        f"This model's maximum context length is {limit} tokens. However, your messages"
        f" resulted in {tokens} tokens. Please reduce the length of the messages."
    )
    body = _error_body(message, "invalid_request_error", "messages", "context_length_exceeded")
    return error(400, body)


def _openai_error(status: int, message: str, *, code: str | None = None) -> Reply:
    return json_reply(status, _error_body(message, "invalid_request_error", None, code))


def _error_body(message: str, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _mask(key: str) -> str:
    """OpenAI echoes a wrong key only partly: `sk-abc*****wxyz`."""
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * len(key)
