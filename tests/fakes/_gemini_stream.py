"""Gemini's streamed answers (PROVIDERS.md §6.6), for the fake and for tests.

    fake.script(stream(sse(*gemini_text_chunks("Hel", "lo")[:1],
                           gemini_stream_error(503, "UNAVAILABLE", "overloaded"))))

With `?alt=sse` every event is `data: <GenerateContentResponse>` (the `sse` helper of
`_script` writes exactly that) and the body's end is the stream's end; without it the
same responses come as one JSON array.  `gemini_response_chunks` splits a whole answer into
the responses Gemini streams for it; `gemini_text_chunks` builds a text answer's
responses from its pieces, to cut or extend in a test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def gemini_response_chunks(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The responses that stream `answer` (a whole generateContent answer).

    Text parts arrive in two halves, function calls whole; every response repeats
    `modelVersion` and `responseId` and carries the prompt's usage; the last one has
    each candidate's `finishReason` and the complete `usageMetadata`.
    """
    per_candidate: list[list[list[dict[str, Any]]]] = []
    for whole in answer.get("candidates") or ():
        steps: list[list[dict[str, Any]]] = []
        for part in (whole.get("content") or {}).get("parts") or ():
            if isinstance(part.get("text"), str):
                steps += [[{**part, "text": piece}] for piece in _halves(part["text"])]
            else:
                steps.append([part])
        per_candidate.append(steps or [[]])
    count = max((len(steps) for steps in per_candidate), default=1)
    usage = dict(answer.get("usageMetadata") or {})
    prompt_only = {key: usage[key] for key in ("promptTokenCount",) if key in usage}
    common = {key: answer[key] for key in ("modelVersion", "responseId") if key in answer}
    chunks: list[dict[str, Any]] = []
    for step in range(count):
        last = step == count - 1
        candidates = []
        for position, steps in enumerate(per_candidate):
            source = answer["candidates"][position]
            parts = steps[step] if step < len(steps) else []
            if not parts and not last:
                continue
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts},
                                         "index": source.get("index", position)}  # fmt: skip
            if last:
                candidate["finishReason"] = source.get("finishReason", "STOP")
            candidates.append(candidate)
        chunk: dict[str, Any] = {"candidates": candidates, **common}
        chunk["usageMetadata"] = usage if last else prompt_only
        chunks.append(chunk)
    return chunks


def gemini_text_chunks(
    *pieces: str,
    finish_reason: str = "STOP",
    model: str = "gemini-2.5-flash",
    response_id: str = "resp_stream",
) -> list[dict[str, Any]]:
    """A text answer streamed in `pieces`, the last response with `finish_reason` and usage."""
    chunks: list[dict[str, Any]] = []
    for position, piece in enumerate(pieces):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]},
                                     "index": 0}  # fmt: skip
        usage: dict[str, int] = {"promptTokenCount": 10}
        if position == len(pieces) - 1:
            candidate["finishReason"] = finish_reason
            usage = {**usage, "candidatesTokenCount": len(pieces),
                     "totalTokenCount": 10 + len(pieces)}  # fmt: skip
        chunks.append({"candidates": [candidate], "usageMetadata": usage,
                       "modelVersion": model, "responseId": response_id})  # fmt: skip
    return chunks


def gemini_stream_error(code: int, status: str, message: str) -> dict[str, Any]:
    """An error object sent as a `data:` event after HTTP 200 (§6.6)."""
    return {"error": {"code": code, "message": message, "status": status}}


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part] or [text]
