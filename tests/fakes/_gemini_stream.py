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

import re
from collections.abc import Mapping
from typing import Any, Final

_TOKEN: Final = re.compile(r"\s*\S+|\s+")


def gemini_response_chunks(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The responses that stream `answer` (a whole generateContent answer).

    Text parts arrive in two halves (a `thoughtSignature` with the second), function calls
    whole; every response repeats `modelVersion` and `responseId` and carries the prompt's
    usage; the last one has each candidate's `finishReason` and the complete
    `usageMetadata`.  A candidate with a `logprobsResult` streams each answer piece's own.
    """
    per_candidate: list[list[list[dict[str, Any]]]] = []
    for whole in answer.get("candidates") or ():
        steps: list[list[dict[str, Any]]] = []
        for part in (whole.get("content") or {}).get("parts") or ():
            if isinstance(part.get("text"), str):
                pieces = _halves(part["text"])
                unsigned = {k: v for k, v in part.items() if k != "thoughtSignature"}
                steps += [[{**unsigned, "text": piece}] for piece in pieces[:-1]]
                steps.append([{**part, "text": pieces[-1]}])
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
            logprobs = source.get("logprobsResult")
            text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
            if logprobs is not None and text:
                top = len((logprobs.get("topCandidates") or [{}])[0].get("candidates") or [])
                candidate["logprobsResult"] = gemini_logprobs(text, top)
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


def gemini_logprobs(text: str, top: int) -> dict[str, Any]:
    """A `logprobsResult` for `text`: one token per word, `top` top candidates per step (the
    chosen token first); like proto3 JSON, a zero `logProbability` is left out."""
    chosen: list[dict[str, Any]] = []
    tops: list[dict[str, Any]] = []
    for position, token in enumerate(_TOKEN.findall(text)):
        logprob = -0.125 * position
        entry: dict[str, Any] = {"token": token, "tokenId": 100 + position}
        if logprob:
            entry["logProbability"] = logprob
        chosen.append(entry)
        others = [{"token": f"{token.strip()}~{k}", "tokenId": 900 + k,
                   "logProbability": logprob - k - 1.0} for k in range(top - 1)]  # fmt: skip
        tops.append({"candidates": [entry, *others]})
    result: dict[str, Any] = {"chosenCandidates": chosen}
    if top:
        result["topCandidates"] = tops
    return result


def gemini_stream_error(code: int, status: str, message: str) -> dict[str, Any]:
    """An error object sent as a `data:` event after HTTP 200 (§6.6)."""
    return {"error": {"code": code, "message": message, "status": status}}


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part] or [text]
