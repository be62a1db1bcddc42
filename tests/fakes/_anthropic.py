"""`AnthropicFake`: a strict `POST /v1/messages`, plus builders for Anthropic's errors (§3)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ._anthropic_rules import check_messages_request
from ._anthropic_stream import anthropic_message_events, anthropic_sse
from ._asgi import Reply, json_reply
from ._base import FakeProvider
from ._chat_reply import _example
from ._claude_models import sign_thinking, thinking_on
from ._recording import RecordedRequest
from ._script import Error, Success, error

MESSAGES_PATH: Final = "/v1/messages"
CHARS_PER_TOKEN: Final = 4
"""The fakes' token size: an answer longer than max_tokens of these is cut (`max_tokens`)."""
ANTHROPIC_VERSIONS: Final = frozenset({"2023-06-01", "2023-01-01"})


class AnthropicFake(FakeProvider):
    """Strict fake of the Anthropic Messages API (PROVIDERS.md §3), a raw ASGI app.

        fake = AnthropicFake(api_key="sk-ant-test")
        async with serve_app(fake) as url:  # deployment api_base = url

    Checks, in order: route (`POST /v1/messages`, else 404 `not_found_error`), `x-api-key`
    (401 `authentication_error`), `anthropic-version` (400), a JSON object body (400),
    every rule of `check_messages_request` (400 `invalid_request_error`), and `models`
    when given (404 `not_found_error`).  Errors have Anthropic's shape
    `{"type": "error", "error": {"type", "message"}, "request_id"}`.  Accepted requests
    consume one scripted directive; the default reply is `"<name>: <last user text>"`
    with `end_turn`, or a `tool_use` of the tool `tool_choice` forces (`any`: the first).
    Text beyond `max_tokens` (at `CHARS_PER_TOKEN`) is cut, with `max_tokens` as the
    stop reason.  A `Success` directive's `finish_reason` is sent as the raw `stop_reason`
    (`"refusal"`, `"max_tokens"`...).  `stream: true` gets the same message as named SSE
    events (`anthropic_message_events`, §3.7); script failures with `stream(anthropic_sse(...))`.

    Like the real API it thinks when `thinking` is on (a signed thinking block first, see
    `_claude_models.sign_thinking`), answers an `output_config.format` with JSON of the
    schema, and caches prompt prefixes: the prefix up to the last `cache_control` block is
    written (`cache_creation_input_tokens`) once, then read (`cache_read_input_tokens`).
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-ant-test",
        name: str = "anthropic",
        alternation: bool = True,
        models: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name=name)
        self.api_key = api_key
        self.alternation = alternation
        self.models = None if models is None else frozenset(models)
        self._served = 0
        self._cached: set[str] = set()  # digests of prompt prefixes written to the cache

    def _check(self, record: RecordedRequest) -> Reply | None:
        if record.method != "POST" or record.path != MESSAGES_PATH:
            return anthropic_reply(404, "not_found_error", "Not Found")
        key = record.headers.get("x-api-key")
        if key is None:
            return anthropic_reply(401, "authentication_error", "x-api-key header is required")
        if key != self.api_key:
            return anthropic_reply(401, "authentication_error", "invalid x-api-key")
        version = record.headers.get("anthropic-version")
        if version is None:
            return anthropic_reply(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        if version not in ANTHROPIC_VERSIONS:
            return anthropic_reply(
                400, "invalid_request_error", f"anthropic-version: invalid version {version!r}"
            )
        media_type = record.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json" or not isinstance(record.json, dict):
            return anthropic_reply(
                400, "invalid_request_error", "There was an error parsing the body as JSON"
            )
        problem = check_messages_request(record.json, alternation=self.alternation)
        if problem is not None:
            return anthropic_reply(400, "invalid_request_error", problem)
        model = record.json["model"]
        if self.models is not None and model not in self.models:
            return anthropic_reply(404, "not_found_error", f"model: {model}")
        return None

    def _answer(self, record: RecordedRequest, directive: Success) -> Reply:
        self._served += 1
        body: Mapping[str, Any] = record.json
        serial = _digest(f"{self.name}:{self._served}")
        content = _content(body, directive, self.name, serial)
        uses = any(block["type"] == "tool_use" for block in content)
        stop_reason = directive.finish_reason or ("tool_use" if uses else "end_turn")
        if _cut_to(content, body["max_tokens"] * CHARS_PER_TOKEN) and not directive.finish_reason:
            stop_reason = "max_tokens"
        said = json.dumps(content)
        prompt = max(1, len(json.dumps(body["messages"])) // 4)
        written = read = 0
        prefix = _cached_prefix(body)
        if prefix is not None:
            digest, size = prefix
            if digest in self._cached:
                read = min(size, prompt)
            else:
                written = min(size, prompt)
                self._cached.add(digest)
        message = {
            "id": f"msg_{serial}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": prompt - written - read,
                "output_tokens": max(1, len(said) // 8),
                "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read,
                "service_tier": "standard",
            },
        }
        headers = (("request-id", f"req_{serial}"), *directive.headers)
        if body.get("stream") is True:
            chunks = tuple(anthropic_sse(event) for event in anthropic_message_events(message))
            return Reply(
                status=200,
                headers=headers,
                chunks=chunks,
                content_type="text/event-stream; charset=utf-8",
            )
        return json_reply(200, message, headers)


def _content(
    body: Mapping[str, Any], directive: Success, speaker: str, serial: str
) -> list[dict[str, Any]]:
    def use(index: int, name: str, arguments: Any) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": f"toolu_{serial}{index}",
            "name": name,
            "input": arguments,
        }

    blocks: list[dict[str, Any]] = []
    if thinking_on(body.get("thinking")):
        thought = f"{speaker} thinks about: {_last_user_text(body['messages'])}"
        blocks.append(
            {"type": "thinking", "thinking": thought, "signature": sign_thinking(thought)}
        )
    if directive.content is not None or directive.tool_calls is not None:
        if directive.content is not None:
            blocks.append({"type": "text", "text": directive.content})
        for index, (name, arguments) in enumerate(directive.tool_calls or ()):
            blocks.append(use(index, name, json.loads(arguments)))
        return blocks
    forced = _forced_tool(body)
    if forced is not None:
        return [*blocks, use(0, forced["name"], _example(forced["input_schema"]))]
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema")
    if schema is not None:
        return [*blocks, {"type": "text", "text": json.dumps(_example(schema))}]
    text = f"{speaker}: {_last_user_text(body['messages'])}"
    return [*blocks, {"type": "text", "text": text}]


def _cut_to(content: list[dict[str, Any]], budget: int) -> bool:
    """Cut the text blocks of `content` to `budget` characters in all; True if it cut."""
    cut = False
    for block in content:
        if block["type"] == "text":
            if len(block["text"]) > budget:
                block["text"], cut = block["text"][:budget], True
            budget -= len(block["text"])
    return cut


def _cached_prefix(body: Mapping[str, Any]) -> tuple[str, int] | None:
    """`(digest, tokens)` of the prompt up to its last cache_control block, or None."""
    sequence: list[Any] = [*(body.get("tools") or ())]
    system = body.get("system")
    sequence += system if isinstance(system, list) else [system]
    for message in body["messages"]:
        content = message["content"]
        sequence += content if isinstance(content, list) else [content]
    marks = [
        i for i, item in enumerate(sequence) if isinstance(item, dict) and item.get("cache_control")
    ]
    if not marks:
        return None
    prefix = json.dumps([body["model"], sequence[: marks[-1] + 1]], sort_keys=True)
    return _digest(prefix), max(1, len(prefix) // 4)


def _forced_tool(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    tools: Sequence[Mapping[str, Any]] = body.get("tools") or ()
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") not in ("any", "tool"):
        return None
    if choice["type"] == "any":
        return tools[0]
    return next(tool for tool in tools if tool["name"] == choice["name"])


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        return "".join(block["text"] for block in content if block.get("type") == "text")
    return ""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def anthropic_body(kind: str, message: str) -> dict[str, Any]:
    """Anthropic's error body: `{"type": "error", "error": {"type", "message"}, "request_id"}`."""
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": f"req_{_digest(kind + message)}",
    }


def anthropic_reply(status: int, kind: str, message: str) -> Reply:
    """An Anthropic error as the fake's own rejection."""
    return json_reply(status, anthropic_body(kind, message))


def anthropic_error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> Error:
    """Any Anthropic error as a scripted directive (`kind` is the `error.type`)."""
    return error(status, anthropic_body(kind, message), headers)


def anthropic_overloaded() -> Error:
    """Anthropic's 529 `overloaded_error` (§3.5)."""
    return anthropic_error(529, "overloaded_error", "Overloaded")


def anthropic_rate_limited(*, retry_after: float | None = None) -> Error:
    """Anthropic's 429 `rate_limit_error`, with `retry-after` when given (§3.5)."""
    headers = {"anthropic-ratelimit-requests-remaining": "0"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    message = (
        "This request would exceed your organization's rate limit of 30,000 input tokens per"
        " minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
    )
    return anthropic_error(429, "rate_limit_error", message, headers)


def anthropic_prompt_too_long(*, tokens: int = 213021, limit: int = 200000) -> Error:
    """Anthropic's context overflow: a plain 400 told apart only by its message (§3.4)."""
    message = f"prompt is too long: {tokens} tokens > {limit} maximum"
    return anthropic_error(400, "invalid_request_error", message)


def anthropic_credit_balance_low() -> Error:
    """Anthropic's out-of-credit 400: quota, not a malformed request (§8.3)."""
    message = (
        "Your credit balance is too low to access the Anthropic API. Please go to Plans &"
        " Billing to upgrade or purchase credits."
    )
    return anthropic_error(400, "invalid_request_error", message)
