"""The `mock` provider: an OpenAI-compatible upstream inside the process.

It is an `httpx` transport, so a mock deployment runs the very same actor,
adapter, error classification and metrics as a real one; only the socket is
missing. Knobs (from the deployment config): `latency_ms`, `reply`,
`fail_status` with `fail_times`, `hang`, and the fault drills `fault` (with
`retry_after_s`), which answer as OpenAI does when it fails that way, so every path
of the router (context-window and content-policy chains, cooldown on Retry-After,
first-token timeout failover, the error chunk after the commit) can be shown
without a network.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Final

import anyio
import httpx
import msgspec

from config import Deployment

from .._chat import (
    ChatCompletion,
    ChatRequest,
    Choice,
    FunctionChoice,
    NamedToolChoice,
    ResponseFunctionCall,
    ResponseMessage,
    ResponseToolCall,
    Usage,
    UserMessage,
    encoder,
    request_decoder,
)
from ._chat_parts import function_tools

MOCK_BASE: Final = "http://mock.invalid/v1"
_SSE: Final = {"content-type": "text/event-stream"}
_KEEPALIVE_S: Final = 0.05
"""How often a "keepalive_only" stream sends a comment (or every latency_ms)."""
_FAULTS: Final[dict[str, tuple[int, str, str, str]]] = {
    # status, type, code, message: OpenAI's error bodies for these failures
    "context_window": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130500 tokens. Please reduce the length of the messages. (mock)",
    ),
    "content_policy": (
        400,
        "invalid_request_error",
        "content_policy_violation",
        "Your request was rejected as a result of our safety system. (mock)",
    ),
    "rate_limited": (
        429,
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later. (mock)",
    ),
}

_FAILURES: Final = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class MockUpstream:
    """The fake provider behind one mock deployment (an async httpx handler)."""

    def __init__(self, spec: Deployment) -> None:
        self._spec = spec
        self._failed = 0
        self._served = 0

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.MockTransport(self)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        spec = self._spec
        if spec.hang:
            await anyio.sleep_forever()
        if spec.latency_ms:
            await anyio.sleep(spec.latency_ms / 1000.0)
        failing = (spec.fail_status is not None or spec.fault is not None) and (
            not spec.fail_times or self._failed < spec.fail_times
        )
        if failing:
            self._failed += 1
        if failing and spec.fail_status is not None:
            return self._failure(spec.fail_status)
        if failing and spec.fault in _FAULTS:
            return self._fault(_FAULTS[spec.fault])
        self._served += 1
        chat = request_decoder.decode(request.content)
        completion = self._completion(chat)
        if failing:  # a stalling fault
            if not chat.stream:
                await anyio.sleep_forever()  # the attempt's timeout ends it
            body = _stalled(_sse(completion, chat), spec.fault, spec.latency_ms)
            return httpx.Response(200, content=body, headers=_SSE)
        if chat.stream:
            return httpx.Response(200, content=_sse(completion, chat), headers=_SSE)
        return httpx.Response(
            200, content=encoder.encode(completion), headers={"content-type": "application/json"}
        )

    def _failure(self, status: int) -> httpx.Response:
        kind, code = _FAILURES.get(status, ("server_error", "mock_failure"))
        return self._fault((status, kind, code, f"mock failure {status}"))

    def _fault(self, fault: tuple[int, str, str, str]) -> httpx.Response:
        status, kind, code, message = fault
        body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
        headers = {"content-type": "application/json"}
        if status in (429, 503):
            wait = self._spec.retry_after_s
            headers["retry-after"] = "1" if wait is None else f"{wait:g}"
        return httpx.Response(status, content=msgspec.json.encode(body), headers=headers)

    def _completion(self, chat: ChatRequest) -> ChatCompletion:
        tool = _forced_tool(chat)
        function = _forced_function(chat)
        if function is not None:  # the legacy API answers in its own field, as OpenAI does
            legacy = {"name": function, "arguments": "{}"}
            message = ResponseMessage(content=None, function_call=legacy)
            finish = "function_call"
        elif tool is not None:
            call = ResponseToolCall(
                id=f"call_mock{self._served:08d}",
                function=ResponseFunctionCall(name=tool, arguments="{}"),
            )
            message = ResponseMessage(content=None, tool_calls=(call,))
            finish = "tool_calls"
        else:
            message = ResponseMessage(content=self._spec.reply or _echo(chat))
            finish = "stop"
        prompt = sum(len(encoder.encode(m)) for m in chat.messages) // 4
        completion = len(message.content or "") // 4 + 1
        return ChatCompletion(
            id=f"chatcmpl-mock-{self._spec.name}-{self._served}",
            created=int(time.time()),
            model=chat.model,
            choices=(Choice(index=0, message=message, finish_reason=finish),),
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
            ),
        )


def _sse(completion: ChatCompletion, chat: ChatRequest) -> bytes:
    """The completion as OpenAI streams it: role, word pieces or the tool call, finish, usage."""
    choice = completion.choices[0]
    message = choice.message
    deltas: list[dict[str, object]] = [{"role": "assistant", "content": ""}]
    if message.function_call:
        name = {"name": message.function_call["name"], "arguments": ""}
        deltas.append({"function_call": name})
        deltas.append({"function_call": {"arguments": message.function_call["arguments"]}})
    for index, call in enumerate(message.tool_calls or ()):
        name = {"name": call.function.name, "arguments": ""}
        deltas.append({"tool_calls": [{"index": index, "id": call.id, "function": name}]})
        arguments = {"arguments": call.function.arguments}
        deltas.append({"tool_calls": [{"index": index, "function": arguments}]})
    if not message.tool_calls and not message.function_call:
        words = (message.content or "").split(" ")
        deltas.extend({"content": w if i == 0 else " " + w} for i, w in enumerate(words))
    choices: list[list[dict[str, object]]] = [
        [{"index": 0, "delta": d, "finish_reason": None}] for d in deltas
    ]
    choices.append([{"index": 0, "delta": {}, "finish_reason": choice.finish_reason}])
    head = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created}
    events: list[dict[str, object]] = [
        {**head, "model": completion.model, "choices": c} for c in choices
    ]
    if chat.stream_options and chat.stream_options.include_usage:
        events.append({**head, "model": completion.model, "choices": [], "usage": completion.usage})
    body = b"".join(b"data: " + encoder.encode(event) + b"\n\n" for event in events)
    return body + b"data: [DONE]\n\n"


async def _stalled(body: bytes, fault: str | None, latency_ms: float) -> AsyncIterator[bytes]:
    """A stream that stops: after the role chunk, after the first word, or at once with
    nothing but keep-alive comments (it never ends by itself: a timeout ends it)."""
    events = [event + b"\n\n" for event in body.split(b"\n\n") if event]
    if fault == "keepalive_only":
        while True:
            yield b": keep-alive\n\n"
            await anyio.sleep(max(latency_ms / 1000.0, _KEEPALIVE_S))
    sent = 1 if fault == "stall_before_first_token" else 2  # role chunk; + the first word
    yield b"".join(events[:sent])
    await anyio.sleep_forever()


def _forced_tool(chat: ChatRequest) -> str | None:
    if not chat.tools:
        return None
    if isinstance(chat.tool_choice, NamedToolChoice):
        return chat.tool_choice.function.name
    if chat.tool_choice == "required":
        return function_tools(chat)[0].function.name
    return None


def _forced_function(chat: ChatRequest) -> str | None:
    if chat.functions and isinstance(chat.function_call, FunctionChoice):
        return chat.function_call.name
    return None


def _echo(chat: ChatRequest) -> str:
    for message in reversed(chat.messages):
        if isinstance(message, UserMessage) and isinstance(message.content, str):
            return f"mock: {message.content}"
    return "mock: hello"
