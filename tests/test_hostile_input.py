"""Hostile client bodies over the real socket: each is a precise 4xx, none a 500 or a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from dispatcher import MAX_JSON_DEPTH, Daemon

from .jobsupport import client, config_text, running, stored

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Daemon]:
    """One daemon for the whole module: every case must leave it serving anyway."""
    async with running(tmp_path_factory.mktemp("hostile"), config_text()) as daemon:
        yield daemon


@pytest.fixture
async def http(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with client(daemon) as http:
        with anyio.fail_after(10):
            yield http


CHAT = "/v1/chat/completions"
JOBS = "/v1/jobs"
JSON = {"content-type": "application/json"}
GOOD = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}


def chat(**extra: Any) -> dict[str, Any]:
    return {**GOOD, **extra}


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """OpenAI's error shape with this status and code, and a short answer."""
    assert response.status_code == status, response.text
    assert len(response.content) < 1000, response.content[:200]
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code and error["message"]
    return error


async def assert_still_serving(http: httpx.AsyncClient) -> None:
    assert (await http.post(CHAT, json=GOOD)).status_code == 200
    assert (await http.post(JOBS, json={"request": GOOD})).status_code == 202


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        pytest.param(JOBS, {"request": GOOD, "priority": 2**63}, "priority", id="priority-2**63"),
        pytest.param(JOBS, {"request": GOOD, "priority": -(2**70)}, "priority", id="priority-neg"),
        pytest.param(JOBS, {"request": GOOD, "timeout_s": 1e300}, "timeout_s", id="timeout-huge"),
        pytest.param(JOBS, {"request": chat(seed=2**64)}, "request.seed", id="job-request-seed"),
        pytest.param(CHAT, chat(max_tokens=2**63), "max_tokens", id="max_tokens"),
        pytest.param(
            CHAT, chat(max_completion_tokens=2**31), "max_completion_tokens", id="max_compl"
        ),
        pytest.param(CHAT, chat(n=10**30), "n", id="n"),
        pytest.param(CHAT, chat(seed=2**63), "seed", id="seed-over"),
        pytest.param(CHAT, chat(seed=-(2**63) - 1), "seed", id="seed-under"),
        pytest.param(CHAT, chat(top_logprobs=10**20), "top_logprobs", id="top_logprobs"),
        pytest.param(CHAT, chat(top_logprobs=-1), "top_logprobs", id="top_logprobs-neg"),
    ],
)
async def test_integers_out_of_range_are_400(
    daemon: Daemon, http: httpx.AsyncClient, path: str, body: dict[str, Any], param: str
) -> None:
    """Every integer has a range at decode time: out of it is a 400 naming it, never a crash."""
    before = stored(daemon.store_path)
    response = await http.post(path, json=body)
    error = assert_error_shape(response, 400, "invalid_request")
    assert error["param"] == param
    assert stored(daemon.store_path) == before
    await assert_still_serving(http)


async def test_integers_at_their_bounds_are_accepted(http: httpx.AsyncClient) -> None:
    """The ranges are wide: the extremes a real client may send still work."""
    request = chat(seed=2**63 - 1, max_tokens=2**31 - 1, n=1, top_logprobs=20)
    assert (await http.post(CHAT, json=request)).status_code == 200
    for priority in (2**31 - 1, -(2**31)):
        envelope = {"request": request, "priority": priority, "timeout_s": 86400}
        assert (await http.post(JOBS, json=envelope)).status_code == 202


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(
            CHAT, b'{"model": "mini", "messages": [{"role": "user", "content": "h\xc3i"}]}'
        ),
        pytest.param(CHAT, b'{"model": "\xff", "messages": [{"role": "user", "content": "hi"}]}'),
        pytest.param(
            JOBS,
            b'{"request": {"model": "mini", "messages": [{"role": "user", '
            b'"content": "\xed\xa0\x80"}]}}',
            id="job-surrogate",
        ),
        pytest.param(
            JOBS,
            b'{"request": {"model": "mini", "messages": [{"role": "user", '
            b'"content": "hi"}]}, "metadata": {"k": "\xfe"}}',
            id="job-metadata",
        ),
    ],
)
async def test_invalid_utf8_in_a_string_is_invalid_json(
    http: httpx.AsyncClient, path: str, body: bytes
) -> None:
    """A JSON string that is not UTF-8 is a 400 invalid_json on both endpoints."""
    response = await http.post(path, content=body, headers=JSON)
    assert_error_shape(response, 400, "invalid_json")
    await assert_still_serving(http)


def nested(depth: int) -> Any:
    """A JSON value `depth` levels deep, alternating arrays and objects."""
    value: Any = "leaf"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def with_schema_depth(total: int, deepest: Any = None) -> dict[str, Any]:
    """A chat request nesting `total` levels, the deepest in a tool's JSON schema."""
    # request{} > tools[] > tool{} > function{} > parameters{} > properties{} > ...
    inner = nested(total - 6) if deepest is None else deepest
    schema = {"type": "object", "properties": {"x": inner}}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    return chat(tools=[tool])


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


DEEP = "@deep@"
"""Stands for 1,500 levels of nesting (past Python's recursion limit: what crashed every
decoder), spliced into the encoded body because no encoder can write it."""


def encode_deep(body: Any) -> bytes:
    levels = 1500
    deep = b"[" * levels + b"]" * levels
    return msgspec.json.encode(body).replace(b'"@deep@"', deep)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(CHAT, with_schema_depth(0, DEEP), id="tool-schema"),
        pytest.param(
            CHAT,
            chat(response_format={"type": "json_schema", "json_schema": {"s": DEEP}}),
            id="json-schema",
        ),
        pytest.param(CHAT, chat(unknown=DEEP), id="unknown-key"),
        pytest.param(CHAT, {"model": "mini", "messages": DEEP}, id="messages"),
        pytest.param(CHAT, DEEP, id="top-level"),
        pytest.param(JOBS, {"request": with_schema_depth(0, DEEP)}, id="job-request"),
        pytest.param(JOBS, {"request": DEEP}, id="job-request-raw"),
        pytest.param(JOBS, {"request": GOOD, "metadata": DEEP}, id="job-metadata"),
        pytest.param(JOBS, {"request": GOOD, "color": DEEP}, id="job-unknown-key"),
    ],
)
async def test_deep_nesting_is_refused_before_decoding(
    http: httpx.AsyncClient, path: str, body: Any
) -> None:
    """Nesting deeper than MAX_JSON_DEPTH anywhere is a 400, not a RecursionError (500)."""
    response = await http.post(path, content=encode_deep(body), headers=JSON)
    assert_error_shape(response, 400, "nesting_too_deep")
    await assert_still_serving(http)


async def test_nesting_limit_is_exact_and_the_same_for_jobs(http: httpx.AsyncClient) -> None:
    """A request MAX_JSON_DEPTH deep is served, live and as a job; one level more is not."""
    deepest, too_deep = with_schema_depth(MAX_JSON_DEPTH), with_schema_depth(MAX_JSON_DEPTH + 1)
    assert (depth_of(deepest), depth_of(too_deep)) == (MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1)
    assert (await http.post(CHAT, json=deepest)).status_code == 200
    assert (await http.post(JOBS, json={"request": deepest})).status_code == 202
    for response in (
        await http.post(CHAT, json=too_deep),
        await http.post(JOBS, json={"request": too_deep}),
    ):
        assert_error_shape(response, 400, "nesting_too_deep")


async def test_brackets_inside_strings_do_not_count(http: httpx.AsyncClient) -> None:
    """Only real nesting counts: a prompt full of brackets and escapes is served."""
    text = '[{"\\' * 500 + '\\"]]' * 500
    response = await http.post(CHAT, json=chat(messages=[{"role": "user", "content": text}]))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "",
    ],
)
@pytest.mark.parametrize("path", [CHAT, JOBS])
async def test_only_json_bodies_are_accepted(
    daemon: Daemon, http: httpx.AsyncClient, path: str, content_type: str | None
) -> None:
    """A browser's simple request (text/plain, a form) is a 415: no CSRF on a loopback port."""
    body = msgspec.json.encode(GOOD if path == CHAT else {"request": GOOD})
    headers = {} if content_type is None else {"content-type": content_type}
    before = stored(daemon.store_path)
    response = await http.post(path, content=body, headers=headers)
    assert_error_shape(response, 415, "unsupported_media_type")
    assert stored(daemon.store_path) == before
    await assert_still_serving(http)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_json_content_types_are_accepted(http: httpx.AsyncClient, content_type: str) -> None:
    """application/json in any case, with parameters, is a JSON body."""
    headers = {"content-type": content_type}
    chat_response = await http.post(CHAT, content=msgspec.json.encode(GOOD), headers=headers)
    job = await http.post(JOBS, content=msgspec.json.encode({"request": GOOD}), headers=headers)
    assert (chat_response.status_code, job.status_code) == (200, 202)


HUGE = "x" * 1_000_000


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        pytest.param("POST", CHAT, chat(**{HUGE: 1}), 400, "unknown_parameter", id="unknown-key"),
        pytest.param("POST", CHAT, chat(model=HUGE), 404, "model_not_found", id="model"),
        pytest.param(
            "POST",
            CHAT,
            chat(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "u", "detail": HUGE}}
                        ],
                    }
                ]
            ),
            400,
            "invalid_request",
            id="enum-value",
        ),
        pytest.param(
            "POST", JOBS, {"request": GOOD, HUGE: 1}, 400, "unknown_parameter", id="job-unknown-key"
        ),
        pytest.param(
            "POST", JOBS, {"request": chat(model=HUGE)}, 404, "model_not_found", id="job-model"
        ),
        pytest.param("GET", f"{JOBS}/job_{'x' * 20_000}", None, 404, "job_not_found", id="job-id"),
        pytest.param("GET", f"/v1/{'x' * 20_000}", None, 404, "not_found", id="route"),
        pytest.param(
            "GET", f"{JOBS}?status={'x' * 20_000}", None, 400, "invalid_request", id="status-query"
        ),
    ],
)
async def test_errors_quote_client_input_clipped(
    http: httpx.AsyncClient, method: str, path: str, body: Any, status: int, code: str
) -> None:
    """An error quotes at most ~100 characters of what the client sent, never all of it."""
    response = await http.request(method, path, json=body)
    error = assert_error_shape(response, status, code)
    assert "…" in error["message"]
    assert error["param"] is None or len(error["param"]) <= 101


@pytest.mark.parametrize("limit", ["²", "٣", "9" * 5000, "-1", "0", "1001"])
async def test_listing_limit_takes_ascii_digits_only(http: httpx.AsyncClient, limit: str) -> None:
    """`?limit=` is 1 to 4 ASCII digits: '²' or 5,000 digits (int() refuses both) are a 400."""
    response = await http.get(JOBS, params={"limit": limit})
    assert_error_shape(response, 400, "invalid_request")
