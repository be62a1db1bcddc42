"""The corpus end to end: the real daemon, a loopback upstream replaying recorded bytes.

One daemon serves every case: each case is a deployment (and group) whose api_base points
at `/c/<n>` on a fake upstream that answers any request there with the case's recorded
body, verbatim, gzip-compressed when the client accepts it (as servers behind CDNs do),
and streams in uneven pieces. The client is the daemon's own socket, read as an OpenAI
client reads it and validated with the `openai` SDK's models; a few cases go through the
SDK client itself.
"""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .corpus_support import Case, answer_of, deployment_text, expected, load_cases, streamed_answer
from .fakes import serve_app
from .fakes._asgi import Receive, Scope, Send
from .helpers import running_daemon, uds_client
from .provider_streams import events, sdk

pytestmark = pytest.mark.anyio

CASES: Final = load_cases()
REASONING_PASSED_THROUGH: Final = frozenset({"openai", "azure", "openai-compatible"})
HEAD: Final = '[server]\nsocket = "d.sock"\nmetrics = ""\n[router]\nnum_retries = 0\n'
SDK_CASES: Final = (
    "openai/reply_parallel_tools.json",
    "compatible/issue9_tool_calls_null.json",
    "anthropic/stream_tool_use.sse",
    "gemini/stream_thought_text_call.sse",
    "bedrock/stream_tool_no_input.events",
    "compatible/deepseek_stream_reasoning.sse",
)


class Replay:
    """An upstream answering `/c/<n>/...` with case n's recorded body (and recording requests)."""

    def __init__(self, cases: list[Case]) -> None:
        self.cases = cases
        self.encodings: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        more = True
        while more:  # the request body is read and dropped
            message = await receive()
            more = message.get("more_body", False)
        case = self.cases[int(scope["path"].split("/")[2])]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        accepted = headers.get("accept-encoding", "")
        self.encodings.append(accepted)
        body = case.body()
        reply_headers = [(b"content-type", case.content_type().encode())]
        if "gzip" in accepted:
            body = gzip.compress(body)
            reply_headers.append((b"content-encoding", b"gzip"))
        if not case.stream:
            reply_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": reply_headers})
        for piece in _pieces(body, case.file) if case.stream else [body]:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _pieces(body: bytes, seed: str) -> Iterator[bytes]:
    """`body` in uneven pieces (1 to 97 bytes), as a network delivers it."""
    rng = random.Random(seed)
    start = 0
    while start < len(body):
        end = start + rng.randint(1, 97)
        yield body[start:end]
        start = end


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """botocore's chain finds exactly these fake credentials, in the environment."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKECORPUS00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake/corpus/secret")
    yield


@pytest.fixture
async def corpus_daemon(fake_aws: None, tmp_path: Path) -> AsyncIterator[tuple[Any, Replay]]:
    replay = Replay(CASES)
    async with serve_app(replay) as url:
        text = HEAD + "".join(
            deployment_text(case.provider, f"c{n}", f"{url}/c/{n}") for n, case in enumerate(CASES)
        )
        async with running_daemon(text, tmp_path) as daemon:
            yield daemon, replay


def _check(case: Case, answer: dict[str, Any]) -> None:
    if case.reasoning is None and case.provider not in REASONING_PASSED_THROUGH:
        answer = {**answer, "reasoning": None}
    assert answer == expected(case), case.file


async def test_every_recorded_answer_is_served_through_the_daemon(
    corpus_daemon: tuple[Any, Replay],
) -> None:
    """Each case, over the socket: a valid OpenAI answer holding exactly the recorded answer."""
    daemon, replay = corpus_daemon
    messages = [{"role": "user", "content": "hi"}]
    async with uds_client(daemon, timeout=30) as client:
        for n, case in enumerate(CASES):
            request: dict[str, Any] = {"model": f"c{n}", "messages": messages}
            if not case.stream:
                response = await client.post("/v1/chat/completions", json=request)
                assert response.status_code == 200, (case.file, response.text)
                completion = response.json()
                ChatCompletion.model_validate(completion)
                _check(case, answer_of(completion))
                continue
            request |= {"stream": True, "stream_options": {"include_usage": True}}
            async with client.stream("POST", "/v1/chat/completions", json=request) as response:
                assert response.status_code == 200, case.file
                got = await events(response)
            assert got[-1] == "[DONE]", case.file
            chunks = got[:-1]
            if case.error is not None:  # the stream ends with the daemon's error chunk
                *chunks, last = chunks
                assert last["choices"][0]["finish_reason"] == "error", case.file
                assert last["error"]["code"] == case.error, case.file
            for chunk in chunks:
                ChatCompletionChunk.model_validate(chunk)
            _check(case, streamed_answer(chunks))
    # Every request offered compression (aiohttp), so every recorded body came back gzipped.
    assert len(replay.encodings) == len(CASES)
    assert all("gzip" in accepted for accepted in replay.encodings)


async def test_the_openai_sdk_reads_recorded_answers_through_the_daemon(
    corpus_daemon: tuple[Any, Replay],
) -> None:
    """The SDK client itself, over the socket, reads the answers the recorded bodies hold."""
    daemon, _ = corpus_daemon
    by_file = {case.file: (n, case) for n, case in enumerate(CASES)}
    messages = [{"role": "user", "content": "hi"}]
    async with sdk(daemon) as client:
        for file in SDK_CASES:
            n, case = by_file[file]
            if not case.stream:
                completion = await client.chat.completions.create(model=f"c{n}", messages=messages)
                _check(case, answer_of(completion.model_dump(mode="json", exclude_unset=True)))
                continue
            chunks = [
                chunk.model_dump(mode="json", exclude_unset=True)
                async for chunk in await client.chat.completions.create(
                    model=f"c{n}",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            ]
            _check(case, streamed_answer(chunks))
