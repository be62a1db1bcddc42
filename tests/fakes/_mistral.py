"""`MistralFake`: a strict Mistral `POST /v1/chat/completions` (PROVIDERS.md §5), and errors."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from ._asgi import Reply, json_reply
from ._base import FakeProvider
from ._chat_reply import plan_turn
from ._mistral_rules import MISTRAL_PARAMS, check_mistral_request
from ._recording import RecordedRequest
from ._script import Error, Success, error

MISTRAL_CHAT_PATH: Final = "/v1/chat/completions"
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ENCODER: Final = msgspec.json.Encoder()
_DONE: Final = b"data: [DONE]\n\n"


class MistralFake(FakeProvider):
    """Strict fake of Mistral chat completions, a raw ASGI app.

        fake = MistralFake(api_key="k")
        async with serve_app(fake) as url:  # deployment api_base = url + "/v1"

    Checks, in order: route (404), `Authorization: Bearer <api_key>` (401), a JSON
    object body (422 `json_invalid`), then `check_mistral_request`: the closed schema
    with `accepted_params` as the top-level allow-list (422 `extra_forbidden` and
    friends, at any depth), a known `model` (400 `invalid_model`), and mistral-common's
    conversation rules (400: message order, last role, call/result pairing, ids of
    exactly nine alphanumerics, function names).

    Accepted requests consume one directive. The default reply says `"<name>: <last user
    text>"`, or calls the tool `tool_choice` forces (`any`/`required`: the first tool),
    with a nine-alphanumeric call id. A `Success` directive's `finish_reason` is sent
    as is (`model_length`, `error`...). With `"stream": true` the reply is Mistral's SSE
    (`mistral_stream_events`): text in pieces, every tool call whole in one chunk, and
    usage beside the finish reason in the last chunk, then `data: [DONE]`.
    """

    def __init__(
        self,
        *,
        api_key: str = "mistral-test-key",
        models: Iterable[str] = ("mistral-large-latest",),
        name: str = "mistral",
        accepted_params: Iterable[str] = MISTRAL_PARAMS,
    ) -> None:
        super().__init__(name=name)
        self.api_key = api_key
        self.models = frozenset(models)
        self.accepted_params = frozenset(accepted_params)
        self._served = 0

    def _check(self, record: RecordedRequest) -> Reply | None:
        if record.method != "POST" or record.path != MISTRAL_CHAT_PATH:
            return json_reply(404, {"detail": "Not Found"})  # [UNVERIFIED] FastAPI's default
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return json_reply(
                401, {"message": "Unauthorized", "request_id": "fake"}
            )  # [UNVERIFIED]
        if not isinstance(record.json, dict):
            problem = {"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                       "input": {}, "ctx": {"error": "Expecting value"}}  # fmt: skip
            return json_reply(422, _error({"detail": [problem]}, "invalid_request_error"))
        rejection = check_mistral_request(record.json, accepted=self.accepted_params)
        if rejection is not None:
            return json_reply(rejection.status, rejection.body)
        if record.json["model"] not in self.models:
            model = record.json["model"]
            return json_reply(400, _error(f"Invalid model: {model}", "invalid_model", "1500"))
        return None

    def _answer(self, record: RecordedRequest, directive: Success) -> Reply:
        self._served += 1
        body: Mapping[str, Any] = record.json
        view = dict(body)
        if view.get("tool_choice") == "any":
            view["tool_choice"] = "required"  # synonyms (§5.2)
        turn = plan_turn(view, directive, speaker=self.name, named_choice_stop=False)
        message: dict[str, Any] = {"role": "assistant", "content": turn.content or ""}
        if turn.tool_calls:
            message["tool_calls"] = [
                {"id": _nine(call_id), "type": "function", "index": index,
                 "function": {"name": name, "arguments": arguments}}
                for index, (call_id, name, arguments) in enumerate(turn.tool_calls)
            ]  # fmt: skip
        said = (turn.content or "") + "".join(arguments for _, _, arguments in turn.tool_calls)
        prompt, completion = max(1, len(record.body) // 4), max(1, len(said) // 4)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}  # fmt: skip
        common = {
            "id": hashlib.sha256(f"{self.name}:{self._served}".encode()).hexdigest()[:32],
            "created": int(time.time()),
            "model": body["model"],
        }
        if body.get("stream") is True:
            events = mistral_stream_events(common, message, turn.finish_reason, usage)
            chunks = (*(b"data: " + _ENCODER.encode(e) + b"\n\n" for e in events), _DONE)
            return Reply(status=200, headers=directive.headers, chunks=chunks,
                         content_type="text/event-stream; charset=utf-8")  # fmt: skip
        reply = {
            **common, "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": turn.finish_reason}],
            "usage": usage,
        }  # fmt: skip
        return json_reply(200, reply, directive.headers)


def mistral_stream_events(
    common: Mapping[str, Any],
    message: Mapping[str, Any],
    finish_reason: str,
    usage: Mapping[str, int] | None,
) -> list[dict[str, Any]]:
    """Mistral's streamed chunks for an assistant `message` (§5.6): the role, the text in
    halves, each tool call whole (no `type`, as the SDK's model allows) in one chunk, then
    an empty delta with the finish reason and, beside it, the usage nobody asked for."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**common, "object": "chat.completion.chunk", "choices": [choice]}

    events = [chunk({"role": "assistant", "content": ""})]
    text = message.get("content") or ""
    middle = len(text) // 2
    events += [chunk({"content": part}) for part in (text[:middle], text[middle:]) if part]
    calls = [
        {"id": call["id"], "function": call["function"], "index": call["index"]}
        for call in message.get("tool_calls", ())
    ]
    if calls:
        events.append(chunk({"tool_calls": calls}))
    last = chunk({"content": ""}, finish_reason)
    if usage is not None:
        last["usage"] = dict(usage)
    return [*events, last]


def mistral_rate_limited(*, retry_after: int | None = None) -> Error:
    """Mistral's 429 `rate_limited` / `1300` (§5.5), with a `retry-after` if you ask for one."""
    body = {**_error("Rate limit exceeded", "rate_limited", "1300"), "raw_status_code": 429}
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    return error(429, body, headers)


def mistral_capacity_exceeded() -> Error:
    """Mistral's 503 "Service tier capacity exceeded for this model." (§5.5)."""
    message = "Service tier capacity exceeded for this model."
    return error(503, _error(message, "invalid_request_error"))


def mistral_context_too_large(tokens: int = 300000, limit: int = 131072) -> Error:
    """Mistral's 400 for a prompt over the context window (§5.5)."""
    message = (
        f"Prompt contains {tokens} tokens, too large for model with {limit} maximum context length"
    )
    return error(400, _error(message, "invalid_request_error"))


def _error(message: Any, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


def _nine(seed: str) -> str:
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(out)
