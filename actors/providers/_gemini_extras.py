"""What a Gemini answer carries besides text and calls, in OpenAI's shape (PROVIDERS.md §6.5).

    Gemini                                       OpenAI
    part `thoughtSignature` on a functionCall    tool call `extra_content.google.thought_signature`
                                                 (the shape of Gemini's own OpenAI endpoint),
                                                 sent back as the part's `thoughtSignature`
    candidate `logprobsResult`                   choice `logprobs.content[]`: `chosenCandidates[i]`
                                                 with `topCandidates[i]` as its `top_logprobs`

Both serve the whole answer (`_gemini_reply`) and the stream (`_gemini_stream`), where each
response carries the signatures and log probabilities of its own parts.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import Struct

from .._chat import ToolCall


class _Camel(Struct, frozen=True, rename="camel"):
    """Gemini's JSON is lowerCamelCase; what we do not declare is ignored."""


class LogprobsCandidate(_Camel, frozen=True):
    """One token; proto3 leaves out a zero `logProbability`, so a missing one is 0."""

    token: str | None = None
    log_probability: float | None = None


class TopCandidates(_Camel, frozen=True):
    candidates: list[LogprobsCandidate] | None = None


class LogprobsResult(_Camel, frozen=True):
    """`Candidate.logprobsResult`: one chosen token, and the top tokens, per decoding step."""

    chosen_candidates: list[LogprobsCandidate] | None = None
    top_candidates: list[TopCandidates] | None = None


_SIGNATURE_VENDOR: Final = "google"
_SIGNATURE_KEY: Final = "thought_signature"


def signature_extra(signature: str | None) -> dict[str, Any] | None:
    """A tool call's `extra_content` for a functionCall part's `thoughtSignature` (or None)."""
    if not signature:
        return None
    return {_SIGNATURE_VENDOR: {_SIGNATURE_KEY: signature}}


def signature_of(call: ToolCall) -> str | None:
    """The `thoughtSignature` an earlier Gemini answer gave `call`, if the client kept it."""
    extra = call.extra_content
    vendor = extra.get(_SIGNATURE_VENDOR) if isinstance(extra, dict) else None
    signature = vendor.get(_SIGNATURE_KEY) if isinstance(vendor, dict) else None
    return signature if isinstance(signature, str) and signature else None


def openai_logprobs(result: LogprobsResult) -> dict[str, Any]:
    """`choices[].logprobs` for a `logprobsResult` (validates as the SDK's `ChoiceLogprobs`)."""
    tops = result.top_candidates or []
    content = []
    for step, chosen in enumerate(result.chosen_candidates or ()):
        top = tops[step].candidates or [] if step < len(tops) else []
        content.append({**_token(chosen), "top_logprobs": [_token(each) for each in top]})
    return {"content": content, "refusal": None}


def _token(candidate: LogprobsCandidate) -> dict[str, Any]:
    token = candidate.token or ""
    return {
        "token": token,
        "logprob": candidate.log_probability or 0.0,
        "bytes": list(token.encode()),
    }
