"""x-request-id: taken from the client when plain, generated otherwise, on every answer of
every listener, in the request's log records, and kept with a job."""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from dispatcher._logging import JsonFormatter, RequestContext, TextFormatter
from dispatcher._requestlog import RequestIds, RequestLog, request_id_of
from dispatcher.jobs import SqliteJobStore

from .helpers import running_daemon, uds_client

pytestmark = pytest.mark.anyio

GENERATED = re.compile(r"req_[0-9a-f]{24}")
CONFIG = """
[server]
socket = "run/d.sock"
metrics = "127.0.0.1:0"
listen = "127.0.0.1:0"
api_keys = ["sk-listener-key-0123456789"]
max_body_bytes = 2048
[jobs]
store = "run/jobs.sqlite3"
[[deployment]]
name = "mini-a"
group = "mini"
provider = "mock"
model = "mock-mini"
"""
CHAT = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param(b"abc-123", True, id="plain"),
        pytest.param(b"0f8f:ad2b/req.7_x+y=z@host", True, id="every-allowed-character"),
        pytest.param(b"a" * 128, True, id="128-characters"),
        pytest.param(b"a" * 129, False, id="129-characters"),
        pytest.param(b"", False, id="empty"),
        pytest.param(b"has space", False, id="space"),
        pytest.param(b"line\r\nbreak", False, id="crlf"),
        pytest.param("caf\u00e9".encode(), False, id="non-ascii"),
        pytest.param(b'{"json":1}', False, id="json"),
    ],
)
def test_client_ids_are_kept_only_when_short_and_plain(sent: bytes, kept: bool) -> None:
    """A plain id of at most 128 characters is kept; anything else is replaced by ours."""
    got = request_id_of([(b"x-request-id", sent)])
    if kept:
        assert got == sent.decode()
    else:
        assert GENERATED.fullmatch(got)


def test_generated_ids_differ() -> None:
    """No header: a fresh id each time."""
    assert request_id_of([]) != request_id_of([])
    assert GENERATED.fullmatch(request_id_of([(b"x-other", b"1")]))


def test_a_daemons_ids_are_unique_and_differ_from_another_daemons() -> None:
    """One daemon's ids: the usual shape, never twice; another daemon (a worker, a cluster
    peer, a restart) draws another random part, so its ids are others."""
    ours, theirs = RequestIds(), RequestIds()
    mine = [request_id_of([], ours) for _ in range(10_000)]
    assert all(GENERATED.fullmatch(i) for i in mine)
    assert len(set(mine)) == len(mine)
    assert not set(mine) & {request_id_of([], theirs) for _ in range(10_000)}
    assert request_id_of([(b"x-request-id", b"kept-1")], ours) == "kept-1"


async def test_every_answer_of_every_listener_carries_the_id(tmp_path: Path) -> None:
    """200, 400, 404, 405, 413 on the socket; 401 from the TCP listener's door; the scrape
    listener: each answer names its request id."""
    async with running_daemon(CONFIG, tmp_path) as daemon:
        async with uds_client(daemon) as client:
            answers = [
                await client.post("/v1/chat/completions", json=CHAT),
                await client.post(
                    "/v1/chat/completions",
                    content=b"{",
                    headers={"content-type": "application/json"},
                ),
                await client.get("/v1/nothing"),
                await client.get("/v1/chat/completions"),
                await client.post("/v1/chat/completions", json={**CHAT, "pad": "x" * 4096}),
                await client.get("/health"),
            ]
            assert [a.status_code for a in answers] == [200, 400, 404, 405, 413, 200]
            ids = [a.headers["x-request-id"] for a in answers]
            assert all(GENERATED.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
            kept = await client.get("/health", headers={"x-request-id": "mine-1"})
            assert kept.headers.get_list("x-request-id") == ["mine-1"]
        assert daemon.tcp_address is not None and daemon.metrics_address is not None
        host, port = daemon.tcp_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as tcp:
            refused = await tcp.get("/v1/models", headers={"x-request-id": "tcp-1"})
            assert (refused.status_code, refused.headers["x-request-id"]) == (401, "tcp-1")
        host, port = daemon.metrics_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as scrape:
            assert GENERATED.fullmatch((await scrape.get("/metrics")).headers["x-request-id"])


async def test_access_line_names_the_request_and_escapes_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One access record per request, with its id; a decoded %0A cannot start a new line;
    scrapes on the metrics listener are not logged."""
    caplog.set_level(logging.INFO, logger="dispatcher.access")
    async with running_daemon(CONFIG, tmp_path) as daemon:
        async with uds_client(daemon) as client:
            await client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "r-1"})
            await client.get("/v1/a%0Ab", headers={"x-request-id": "r-2"})
        assert daemon.metrics_address is not None
        host, port = daemon.metrics_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as scrape:
            await scrape.get("/metrics")
    lines = [r for r in caplog.records if r.name == "dispatcher.access"]
    assert [r.__dict__["request_id"] for r in lines] == ["r-1", "r-2"]
    served, odd = lines
    assert served.getMessage() == "POST /v1/chat/completions 200"
    assert (served.__dict__["group"], served.__dict__["attempts"]) == ("mini", 1)
    assert odd.getMessage() == "GET /v1/a\\nb 404"
    assert "\n" not in odd.__dict__["path"]


async def test_log_records_of_a_request_carry_its_id() -> None:
    """Whatever a route logs while serving a request names the request; text and JSON
    formatters show it."""
    logger = logging.getLogger("tests.request_ids")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContext())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    async def app(scope: dict, receive: object, send: object) -> None:
        logger.info("working on it", extra={"group": "mini", "attempts": 2})
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    transport = httpx.ASGITransport(app=RequestLog(app, access=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            handler.setFormatter(TextFormatter())
            await client.get("/", headers={"x-request-id": "text-1"})
            handler.setFormatter(JsonFormatter())
            await client.get("/", headers={"x-request-id": "json-1"})
        logger.info("outside any request")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text, as_json, outside = stream.getvalue().splitlines()
    assert text.endswith(
        " INFO tests.request_ids: working on it group=mini attempts=2 request_id=text-1"
    )
    record = json.loads(as_json)
    assert {k: record[k] for k in ("level", "logger", "message", "group", "attempts")} == {
        "level": "INFO",
        "logger": "tests.request_ids",
        "message": "working on it",
        "group": "mini",
        "attempts": 2,
    }
    assert record["request_id"] == "json-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record["time"])
    assert "request_id" not in json.loads(outside)


async def test_a_job_keeps_the_id_of_its_submission(tmp_path: Path) -> None:
    """The job shows the submission's id (a generated one when none was sent); a repeated
    idempotency key answers the first job with its first id."""
    async with running_daemon(CONFIG, tmp_path) as daemon, uds_client(daemon) as client:
        body = {"request": CHAT, "idempotency_key": "k-1"}
        first = await client.post("/v1/jobs", json=body, headers={"x-request-id": "submit-1"})
        job_id = first.json()["id"]
        again = await client.post("/v1/jobs", json=body, headers={"x-request-id": "submit-2"})
        assert again.json()["id"] == job_id
        done = (await client.get(f"/v1/jobs/{job_id}?wait=10")).json()
        assert (done["status"], done["request_id"]) == ("succeeded", "submit-1")
        stored = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert stored["request_id"] == "submit-1"
        other = await client.post("/v1/jobs", json={"request": CHAT})
        listed = (await client.get("/v1/jobs")).json()["data"]
        by_id = {job["id"]: job["request_id"] for job in listed}
        assert by_id[other.json()["id"]] == other.headers["x-request-id"]


V1_SCHEMA = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
    model TEXT NOT NULL, priority INTEGER NOT NULL, idempotency_key TEXT UNIQUE,
    digest BLOB NOT NULL, request BLOB NOT NULL, metadata BLOB, timeout_s REAL,
    created_at REAL NOT NULL, finished_at REAL, attempts BLOB, result BLOB, error BLOB
);
INSERT INTO jobs (id, status, model, priority, digest, request, created_at)
VALUES ('job_old', 'queued', 'mini', 0, x'00', '{}', 1000.0);
PRAGMA user_version = 1;
"""


async def test_a_version_1_store_gains_the_request_id_column(tmp_path: Path) -> None:
    """A store written before request ids opens, keeps its jobs (without an id), and is
    marked with the current schema version (3: request ids)."""
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
    conn.close()
    store = SqliteJobStore(path)
    await store.open()
    try:
        assert (await store.counts())["queued"] == 1
        [row] = await store.unfinished()
        assert (row.id, row.request_id) == ("job_old", None)
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
