"""Shared by the provider stream tests: run a parser over a split body, read what a client
would make of its chunks, and talk to a daemon whose deployments stream from strict fakes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import msgspec
import openai

from actors import ChatCompletionChunk, ErrorClass, ProviderError
from actors.providers import StreamParser


@dataclass(frozen=True)
class Run:
    """Everything a parser delivered for one body, and how it failed (if it did)."""

    chunks: tuple[ChatCompletionChunk, ...]
    error: tuple[ErrorClass, str, bool] | None = None


def run(parser: StreamParser, pieces: Iterable[bytes]) -> Run:
    """Feed `pieces`, then close, as the actor does; chunks before an error are kept."""
    chunks: list[ChatCompletionChunk] = []
    try:
        for piece in pieces:
            chunks += parser.feed(piece)
        chunks += parser.close()
    except ProviderError as exc:
        chunks += [c for c in exc.partial if isinstance(c, ChatCompletionChunk)]
        return Run(tuple(chunks), (exc.error, exc.message, exc.retryable))
    return Run(tuple(chunks))


def split(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`body` cut at the offsets `cuts` (any order, repeats give empty pieces)."""
    bounds = [0, *sorted(cuts), len(body)]
    return [body[start:end] for start, end in itertools.pairwise(bounds)]


def assert_split_invariant(make: Callable[[], StreamParser], body: bytes) -> None:
    """Every two-way split, and byte-by-byte feeding, deliver what the whole body does."""
    whole = run(make(), [body])
    for cut in range(len(body) + 1):
        assert run(make(), [body[:cut], body[cut:]]) == whole, f"split at {cut}"
    assert run(make(), [body[i : i + 1] for i in range(len(body))]) == whole


def assemble(chunks: Sequence[ChatCompletionChunk]) -> dict[str, Any]:
    """What an OpenAI client makes of `chunks` for choice 0, checking the chunk rules on the way:
    one id per stream, the role on the first delta, and id/type/name only (and always) in
    the first fragment of each tool call, indexes 0..n-1 in order of appearance."""
    assert len({chunk.id for chunk in chunks}) <= 1, "one id per stream"
    text, finish, usage = "", None, None
    calls: dict[int, dict[str, str]] = {}
    deltas = [choice.delta for chunk in chunks for choice in chunk.choices if choice.index == 0]
    if deltas:
        assert deltas[0].role == "assistant", "the first delta carries the role"
        assert all(delta.role is msgspec.UNSET for delta in deltas[1:])
    for chunk in chunks:
        if chunk.usage:
            usage = msgspec.to_builtins(chunk.usage)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            finish = choice.finish_reason or finish
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                function = call.function or None
                if call.index not in calls:
                    assert call.index == len(calls), "tool-call indexes count up from 0"
                    assert call.id and call.type == "function" and function and function.name
                    calls[call.index] = {"id": call.id, "name": function.name, "arguments": ""}
                else:
                    assert call.id is msgspec.UNSET and call.type is msgspec.UNSET
                calls[call.index]["arguments"] += (function.arguments if function else "") or ""
    return {"text": text, "calls": list(calls.values()), "finish": finish, "usage": usage}


# -- end to end ----------------------------------------------------------------

HEAD = """
[server]
socket = "d.sock"
metrics = ""
[router]
num_retries = 0
[router.fallbacks]
"primary" = ["spare"]
"""


def two_deployments(provider: str, model: str, key: str, primary: str, spare: str) -> str:
    """Config: group "primary" (one deployment at `primary`) falls back to "spare"."""
    out = HEAD
    for name, url in (("primary", primary), ("spare", spare)):
        out += (
            f'[[deployment]]\nname = "{name}-a"\ngroup = "{name}"\nprovider = "{provider}"\n'
            f'model = "{model}"\napi_base = "{url}"\napi_key = "{key}"\n'
        )
    return out


def sdk(daemon: Any) -> openai.AsyncOpenAI:
    """The OpenAI SDK, talking to the daemon's Unix socket."""
    transport = httpx2.AsyncHTTPTransport(uds=os.fspath(daemon.socket_path))
    http_client = openai.DefaultAsyncHttpxClient(transport=transport)
    return openai.AsyncOpenAI(base_url="http://d/v1", api_key="unused", http_client=http_client)


async def events(response: httpx.Response) -> list[Any]:
    """The `data:` payloads of an SSE response, decoded (`[DONE]` kept as a string)."""
    out: list[Any] = []
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else msgspec.json.decode(data))
    return out


def streamed_text(got: Sequence[Any]) -> str:
    """The content of choice 0 across decoded chunks."""
    return "".join(
        event["choices"][0]["delta"].get("content") or ""
        for event in got
        if isinstance(event, dict) and event.get("choices")
    )


WEATHER: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
FORCED: Any = {"type": "function", "function": {"name": "get_weather"}}


async def sdk_stream(client: openai.AsyncOpenAI, text: str, **create: Any) -> dict[str, Any]:
    """Stream one answer to `text` from group "primary" through the SDK, as its user reads it:
    the text, the tool calls by index (id, name, concatenated arguments), the last finish
    reason, and the usage chunk (None unless one arrived)."""
    content, finish, usage = "", None, None
    calls: dict[int, dict[str, str]] = {}
    messages = [{"role": "user", "content": text}]
    async for piece in await client.chat.completions.create(
        model="primary", stream=True, messages=messages, **create
    ):
        usage = piece.usage or usage
        for choice in piece.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function:
                    entry["name"] = call.function.name or entry["name"]
                    entry["arguments"] += call.function.arguments or ""
    return {"text": content, "calls": list(calls.values()), "finish": finish, "usage": usage}
