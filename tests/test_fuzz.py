"""Fuzzed bodies against a real daemon over its Unix socket: no 5xx for client errors,
OpenAI's error shape on every 4xx, and the daemon still serving afterwards.

The daemon runs in a blocking portal's event loop for the whole module, so that
hypothesis drives it from plain synchronous tests with a blocking client; every
deployment is a mock, so no network is needed and no 5xx is ever legitimate.
`bench/fuzz.py` sends many more bodies from outside, against a daemon process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import CHAT_FIELDS, GOOD, JOB_FIELDS
from dispatcher import Daemon

from .helpers import running_daemon

CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
drain_timeout_s = 5
[jobs]
store = "run/jobs.sqlite3"
[router]
num_retries = 0
timeout_s = 10
[[deployment]]
name = "mock-a"
group = "mini"
provider = "mock"
model = "mock-mini"
[[deployment]]
name = "mock-b"
group = "other"
provider = "mock"
model = "mock-other"
"""

SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A blocking client of a daemon serving in its own thread's event loop."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        with portal.wrap_async_context_manager(running_daemon(CONFIG, folder)) as daemon:
            with _client(daemon) as http:
                yield http


@contextlib.contextmanager
def _client(daemon: Daemon) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(uds=os.fspath(daemon.socket_path))
    with httpx.Client(transport=transport, base_url="http://d", timeout=30) as http:
        yield http


# -- what a hostile client sends ---------------------------------------------------------

huge_ints = st.sampled_from([2**31, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**400)])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["mini", "other", "nope", "user", "function", "auto", "json_schema"]),
    st.just([{"role": "user", "content": "x"}]),
    st.just([{"type": "function", "function": {"name": "f", "parameters": {}}}]),
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], fields: tuple[str, ...] | list[str]) -> bytes:
    """A valid body with fields set to anything, removed, or added under unknown names."""
    body = dict(base)
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(fields) | st.text(min_size=1, max_size=12))
        if draw(st.booleans()) and name in body:
            del body[name]
        else:
            body[name] = draw(field_values)
    return msgspec.json.encode(body)


@st.composite
def byte_edits(draw: st.DrawFn, raw: bytes) -> bytes:
    """Bytes inserted, replaced or cut anywhere: invalid UTF-8 inside strings, broken JSON."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        noise = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b'"', b"\\"]))
        match draw(st.sampled_from(["insert", "replace", "cut"])):
            case "insert":
                data[at:at] = noise
            case "replace":
                data[at : at + len(noise)] = noise
            case "cut":
                del data[at:]
    return bytes(data)


@st.composite
def deep(draw: st.DrawFn, raw: bytes) -> bytes:
    """Nesting 50 to 3,000 levels deep, spliced in place of a value of a valid body."""
    levels = draw(st.integers(50, 3000))
    opening = draw(st.sampled_from([b"[", b'{"k":', b'[{"k":']))
    closing = {b"[": b"]", b'{"k":': b"}", b'[{"k":': b"}]"}[opening]
    nested = opening * levels + b"1" + closing * levels
    target = draw(st.sampled_from([b'"hi"', b'"mini"', b'"user"']))
    return raw.replace(target, nested, 1)


def bodies(base: dict[str, Any], fields: tuple[str, ...] | list[str]) -> st.SearchStrategy[bytes]:
    raw = msgspec.json.encode(base)
    return st.one_of(
        st.just(raw),
        mutated(base, fields),
        mutated(base, fields).flatmap(byte_edits),
        byte_edits(raw),
        deep(raw),
        json_values.map(msgspec.json.encode),
        st.binary(max_size=200),
    )


content_types = st.sampled_from(
    ["application/json"] * 6 + ["application/json; charset=utf-8", "text/plain", ""]
)


# -- the oracle ---------------------------------------------------------------------------


def check(response: httpx.Response) -> None:
    """Never a 5xx (every upstream is a healthy mock); every 4xx in OpenAI's error shape."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = msgspec.json.decode(response.content)["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
        assert error["code"] is None or isinstance(error["code"], str)
        assert error["param"] is None or isinstance(error["param"], str)
        assert len(response.content) < 4096  # nothing a client sent is echoed whole


def still_serving(http: httpx.Client) -> None:
    assert http.post("/v1/chat/completions", json=GOOD).status_code == 200
    job = http.post("/v1/jobs", json={"request": GOOD})
    assert job.status_code == 202
    assert http.get(f"/v1/jobs/{job.json()['id']}", params={"wait": 10}).status_code == 200


def test_fuzzed_chat_requests(http: httpx.Client) -> None:
    """POST /v1/chat/completions with fuzzed bodies and content types."""

    @SETTINGS
    @given(body=bodies(GOOD, CHAT_FIELDS), content_type=content_types)
    def one(body: bytes, content_type: str) -> None:
        check(http.post("/v1/chat/completions", content=body, headers=_ct(content_type)))

    one()
    still_serving(http)


def test_fuzzed_job_submissions(http: httpx.Client) -> None:
    """POST /v1/jobs with fuzzed envelopes around fuzzed chat requests."""
    envelope = {"request": GOOD, "priority": 1, "timeout_s": 5, "metadata": {"k": "v"}}

    @SETTINGS
    @given(
        body=bodies(envelope, JOB_FIELDS)
        | bodies(GOOD, CHAT_FIELDS).map(lambda r: b'{"request":' + r + b"}"),
        content_type=content_types,
    )
    def one(body: bytes, content_type: str) -> None:
        check(http.post("/v1/jobs", content=body, headers=_ct(content_type)))

    one()
    still_serving(http)


def _ct(content_type: str) -> dict[str, str]:
    return {"content-type": content_type} if content_type else {}
