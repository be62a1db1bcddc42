"""The corpus through each adapter's parser: every recorded answer is served, and correctly.

Each case (tests/corpus/manifest.toml) is parsed whole and, for streams, split at every
byte boundary (or, for long streams, at many: every boundary inside a multi-byte UTF-8
character, a seeded sample of the others, byte-by-byte feeding and random multi-way
splits). Every answer and chunk is validated with the `openai` SDK's own models, and
what a client reads from it (text, tool calls, finish reason, usage...) must equal the
case's expectation.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Final

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from actors import ProviderError

from .corpus_support import (
    CORPUS,
    Case,
    adapter_for_case,
    answer_of,
    builtins,
    expected,
    load_cases,
    streamed_answer,
)

CASES: Final = load_cases()
REPLIES: Final = [pytest.param(case, id=case.id) for case in CASES if not case.stream]
STREAMS: Final = [pytest.param(case, id=case.id) for case in CASES if case.stream]
PROVENANCE: Final = frozenset({"verbatim", "abridged", "reframed", "assembled"})
EVERY_CUT_UP_TO: Final = 3000
"""Streams up to this size are split in two at every byte; longer ones at a sample."""
# The OpenAI family passes reasoning through; other adapters map (or not) their own
# thinking blocks, which these cases do not pin unless they say so.
REASONING_PASSED_THROUGH: Final = frozenset({"openai", "azure", "openai-compatible"})


def check(case: Case, answer: dict[str, Any]) -> None:
    want = expected(case)
    if case.reasoning is None and case.provider not in REASONING_PASSED_THROUGH:
        answer = {**answer, "reasoning": None}
    assert answer == want


def run(case: Case, pieces: Iterable[bytes]) -> tuple[list[Any], str | None]:
    """The chunks a fresh parser delivers for `pieces` (as JSON), and the error class if any."""
    parser = adapter_for_case(case).stream_parser()
    chunks: list[Any] = []
    error = None
    try:
        for piece in pieces:
            chunks += parser.feed(piece)
        chunks += parser.close()
    except ProviderError as exc:
        chunks += list(exc.partial)
        error = str(exc.error)
    return builtins(chunks), error


def normalized(chunks: list[Any]) -> list[Any]:
    """Chunks without the id and timestamp a parser may mint per run."""
    return [{k: v for k, v in chunk.items() if k not in ("id", "created")} for chunk in chunks]


def cuts(body: bytes, seed: str) -> list[int]:
    """Split offsets: every one for short bodies, else every offset inside a UTF-8 character
    and inside the SSE/frame syntax around it, plus a seeded sample."""
    if len(body) <= EVERY_CUT_UP_TO:
        return list(range(1, len(body)))
    inside_characters = [i for i in range(1, len(body)) if 0x80 <= body[i] < 0xC0]
    sample = random.Random(seed).sample(range(1, len(body)), 400)
    return sorted(set(inside_characters) | set(sample))


def test_the_corpus_covers_every_provider_and_names_its_sources() -> None:
    """Every file is a case with a source; every provider has replies and streams."""
    files = {
        str(path.relative_to(CORPUS))
        for path in CORPUS.rglob("*")
        if path.suffix in (".json", ".sse", ".events")
    }
    assert files == {case.file for case in CASES}
    for case in CASES:
        assert case.source and case.provenance in PROVENANCE, case.file
    for provider in ("openai", "azure", "openai-compatible", "anthropic", "bedrock", "gemini"):
        kinds = {case.stream for case in CASES if case.provider == provider}
        assert kinds == {True, False}, provider
    assert {case.stream for case in CASES if case.provider == "mistral"} == {True, False}


@pytest.mark.parametrize("case", REPLIES)
def test_reply_is_served_as_recorded(case: Case) -> None:
    """The whole answer parses, is a valid `ChatCompletion`, and holds the recorded answer."""
    completion = builtins(adapter_for_case(case).parse(200, {}, case.body()))
    ChatCompletion.model_validate(completion)
    check(case, answer_of(completion))


@pytest.mark.parametrize("case", STREAMS)
def test_stream_is_served_as_recorded(case: Case) -> None:
    """The whole stream gives valid `ChatCompletionChunk`s holding the recorded answer."""
    chunks, error = run(case, [case.body()])
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert error == case.error
    check(case, streamed_answer(chunks))


@pytest.mark.parametrize("case", STREAMS)
def test_stream_splits_anywhere(case: Case) -> None:
    """Byte boundaries change nothing: not one byte at a time, not a cut inside a character."""
    body = case.body()
    whole = run(case, [body])
    want = (normalized(whole[0]), whole[1])
    one_by_one = run(case, [body[i : i + 1] for i in range(len(body))])
    assert (normalized(one_by_one[0]), one_by_one[1]) == want
    for cut in cuts(body, case.file):
        got = run(case, [body[:cut], body[cut:]])
        assert (normalized(got[0]), got[1]) == want, f"split at {cut}"
    rng = random.Random(case.file)
    for _ in range(20):
        bounds = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(2, 9))))
        pieces = [body[a:b] for a, b in zip([0, *bounds], [*bounds, len(body)], strict=True)]
        got = run(case, pieces)
        assert (normalized(got[0]), got[1]) == want, f"split at {bounds}"
