"""The corpus of recorded provider replies (tests/corpus/): loading it, and reading answers.

`tests/corpus/manifest.toml` lists one case per recorded file: the provider whose
adapter reads it, where it came from, and the answer it holds (text, tool calls,
finish reason, usage...). A case's body is the file's bytes, verbatim; a Bedrock
stream (`.events`) is a list of recorded event payloads, framed here as AWS
event-stream messages (botocore decodes but cannot write the framing).

`answer_of` reads what an OpenAI client makes of an answer, whole or streamed, in one
shape, so a case's expectation is checked the same way against the adapter's parser,
the daemon's socket answer and the `openai` SDK.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from actors.providers import Adapter, adapter_for
from config import Deployment, parse_config

from .fakes._bedrock_stream import encode_frame

CORPUS: Final = Path(__file__).parent / "corpus"
MODELS: Final[Mapping[str, str]] = {
    "openai": "gpt-4o-2024-08-06",
    "azure": "gpt-4o",
    "openai-compatible": "served-model",
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "gemini": "gemini-2.5-flash",
    "mistral": "mistral-large-latest",
}
EXTRA: Final[Mapping[str, str]] = {
    "azure": 'api_version = "2024-10-21"',
    "bedrock": 'region = "us-east-1"',
}


@dataclass(frozen=True)
class Case:
    """One recorded reply or stream and the answer it holds."""

    file: str
    provider: str
    source: str
    provenance: str
    text: str | None = None
    finish: str | None = None
    usage: tuple[int, int, int] | None = None
    calls: tuple[tuple[str, str], ...] = ()
    """(name, arguments) of each tool call, in order."""
    refusal: str | None = None
    reasoning: str | None = None
    cached: int | None = None
    """usage.prompt_tokens_details.cached_tokens, when the provider reports cached input."""
    annotations: int | None = None
    logprobs: bool = False
    extra_content: bool = False
    """Tool calls carry `extra_content` (Gemini's thought signature), passed through."""
    error: str | None = None
    """The answer ends in this error class (after the chunks before it)."""
    note: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def stream(self) -> bool:
        return self.file.endswith((".sse", ".events"))

    @property
    def id(self) -> str:
        return self.file.rsplit(".", 1)[0].replace("/", ":")

    def body(self) -> bytes:
        raw = (CORPUS / self.file).read_bytes()
        return frame_events(raw) if self.file.endswith(".events") else raw

    def content_type(self) -> str:
        if self.file.endswith(".events"):
            return "application/vnd.amazon.eventstream"
        return "text/event-stream" if self.stream else "application/json"


def load_cases() -> list[Case]:
    manifest = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))
    cases = []
    for entry in manifest["case"]:
        entry = dict(entry)
        if "usage" in entry:
            entry["usage"] = tuple(entry["usage"])
        entry["calls"] = tuple((c["name"], c["arguments"]) for c in entry.get("calls", ()))
        entry["tags"] = tuple(entry.get("tags", ()))
        cases.append(Case(**entry))
    return cases


def frame_events(raw: bytes) -> bytes:
    """AWS event-stream frames for lines `<eventType> <json>` or `!exception <type> <json>`."""
    out = b""
    for line in raw.decode("utf-8").splitlines():
        if not line.strip():
            continue
        kind, _, rest = line.partition(" ")
        if kind == "!exception":
            name, _, payload = rest.partition(" ")
            headers = {
                ":exception-type": name,
                ":content-type": "application/json",
                ":message-type": "exception",
            }
        else:
            payload = rest
            headers = {
                ":event-type": kind,
                ":content-type": "application/json",
                ":message-type": "event",
            }
        out += encode_frame(headers, payload.encode("utf-8"))
    return out


def deployment_text(provider: str, name: str, url: str) -> str:
    """A [[deployment]] named `name` (its own group) of `provider` at `url`."""
    lines = [
        "[[deployment]]",
        f'name = "{name}"',
        f'group = "{name}"',
        f'provider = "{provider}"',
        f'model = "{MODELS[provider]}"',
        f'api_base = "{url}"',
    ]
    if provider != "bedrock":
        lines.append('api_key = "sk-corpus-test"')
    if provider in EXTRA:
        lines.append(EXTRA[provider])
    return "\n".join(lines) + "\n"


def spec_for(case: Case) -> Deployment:
    return parse_config(deployment_text(case.provider, "d", "http://127.0.0.1:9")).deployment[0]


def adapter_for_case(case: Case) -> Adapter:
    return adapter_for(spec_for(case))


# -- what a client makes of an answer ----------------------------------------------


def answer_of(completion: Mapping[str, Any]) -> dict[str, Any]:
    """Choice 0 of a `chat.completion` (as JSON builtins), in the shape `streamed_answer` reads."""
    choice = completion["choices"][0]
    message = choice["message"]
    calls = [
        (call["function"]["name"], call["function"]["arguments"])
        for call in message.get("tool_calls") or ()
    ]
    extra = [call.get("extra_content") for call in message.get("tool_calls") or ()]
    return _answer(
        text=message.get("content"),
        calls=calls,
        finish=choice.get("finish_reason"),
        usage=completion.get("usage"),
        refusal=message.get("refusal"),
        reasoning=message.get("reasoning_content"),
        annotations=message.get("annotations"),
        logprobs=choice.get("logprobs"),
        extra=extra,
    )


def streamed_answer(chunks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What an OpenAI client assembles from streamed chunks (JSON builtins) for choice 0.

    As the SDK does: deltas concatenate, a tool call's fragments gather under its index,
    the last finish_reason and the last usage win. Role may repeat (OpenRouter sends it
    on every delta); that is not an error for a client.
    """
    text: str | None = None
    refusal: str | None = None
    reasoning: str | None = None
    finish = None
    usage = None
    annotations: list[Any] | None = None
    logprobs: list[Any] = []
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text = (text or "") + delta["content"]
            if delta.get("refusal"):
                refusal = (refusal or "") + delta["refusal"]
            if delta.get("reasoning_content"):
                reasoning = (reasoning or "") + delta["reasoning_content"]
            if delta.get("annotations"):
                annotations = (annotations or []) + list(delta["annotations"])
            if (choice.get("logprobs") or {}).get("content"):
                logprobs += choice["logprobs"]["content"]
            for call in delta.get("tool_calls") or ():
                entry = calls.setdefault(
                    call.get("index", 0), {"name": "", "arguments": "", "extra": None}
                )
                function = call.get("function") or {}
                entry["name"] = function.get("name") or entry["name"]
                entry["arguments"] += function.get("arguments") or ""
                entry["extra"] = call.get("extra_content") or entry["extra"]
    ordered = [calls[index] for index in sorted(calls)]
    return _answer(
        text=text,
        calls=[(call["name"], call["arguments"]) for call in ordered],
        finish=finish,
        usage=usage,
        refusal=refusal,
        reasoning=reasoning,
        annotations=annotations,
        logprobs={"content": logprobs} if logprobs else None,
        extra=[call["extra"] for call in ordered],
    )


def _answer(
    *,
    text: str | None,
    calls: Sequence[tuple[str, str]],
    finish: str | None,
    usage: Mapping[str, Any] | None,
    refusal: str | None,
    reasoning: str | None,
    annotations: Sequence[Any] | None,
    logprobs: Any,
    extra: Sequence[Any],
) -> dict[str, Any]:
    details = (usage or {}).get("prompt_tokens_details") or {}
    return {
        "text": text or None,
        "calls": [tuple(call) for call in calls],
        "finish": finish,
        "usage": (
            (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"])
            if usage
            else None
        ),
        "refusal": refusal or None,
        "reasoning": reasoning or None,
        "cached": details.get("cached_tokens"),
        "annotations": len(annotations) if annotations else None,
        "logprobs": bool(logprobs and logprobs.get("content")),
        "extra_content": bool(extra) and all(extra),
    }


def expected(case: Case) -> dict[str, Any]:
    """What `answer_of` / `streamed_answer` must read from `case` (before any error)."""
    return {
        "text": case.text,
        "calls": list(case.calls),
        "finish": case.finish,
        "usage": case.usage,
        "refusal": case.refusal,
        "reasoning": case.reasoning,
        "cached": case.cached,
        "annotations": case.annotations,
        "logprobs": case.logprobs,
        "extra_content": case.extra_content,
    }


def builtins(value: Any) -> Any:
    """A Struct (or anything msgspec encodes) as JSON builtins, as a client receives it."""
    return msgspec.json.decode(msgspec.json.encode(value))
