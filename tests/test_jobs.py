"""Durable jobs over the socket: submit, poll, cancel, list, and their errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from config import parse_config

from .fakes import OpenAIFake, error, serve_app, wait
from .jobstores import STORES
from .jobsupport import (
    client,
    config_text,
    finished,
    job_body,
    running,
    running_on,
    stored,
    submit,
)

pytestmark = pytest.mark.anyio


async def test_round_trip(tmp_path: Path) -> None:
    """202 once committed; the long-poll returns the completion, attempts and metadata."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        with anyio.fail_after(10):
            body = job_body("mini", "hello", metadata={"batch": "b1", "row": "7"})
            response = await http.post("/v1/jobs", json=body)
            assert response.status_code == 202
            accepted = response.json()
            assert accepted == {"id": accepted["id"], "status": "queued"}
            job = await finished(http, accepted["id"])
    assert job["status"] == "succeeded"
    assert job["model"] == "mini"
    assert job["metadata"] == {"batch": "b1", "row": "7"}
    assert job["result"]["object"] == "chat.completion"
    assert job["result"]["choices"][0]["message"]["content"] == "mock: hello"
    [attempt] = job["attempts"]
    assert set(attempt) == {"deployment", "outcome", "status", "latency_ms"}
    assert (attempt["deployment"], attempt["outcome"], attempt["status"]) == (
        "mock",
        "success",
        200,
    )
    assert "error" not in job
    sample = daemon.registry.get_sample_value
    assert sample("dispatcher_job_submissions_total") == 1
    assert sample("dispatcher_job_completions_total", {"outcome": "success"}) == 1
    assert sample("dispatcher_jobs", {"status": "succeeded"}) == 1
    assert sample("dispatcher_jobs", {"status": "queued"}) == 0
    assert sample("dispatcher_job_queue_wait_seconds_count") == 1


async def test_idempotency_key_returns_the_same_job_or_409(tmp_path: Path) -> None:
    """A repeated key answers 200 with the first job; a different request under it is a 409."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        with anyio.fail_after(10):
            first = await http.post("/v1/jobs", json=job_body(text="a", idempotency_key="k1"))
            # Same request, spelled differently (key order, whitespace): still the same job.
            again = await http.post(
                "/v1/jobs",
                content=b'{"idempotency_key": "k1", "request": {"messages": '
                b'[{"content": "a", "role": "user"}], "model": "mini"}}',
                headers={"content-type": "application/json"},
            )
            other = await http.post("/v1/jobs", json=job_body(text="b", idempotency_key="k1"))
            await finished(http, first.json()["id"])
            done = await http.post("/v1/jobs", json=job_body(text="a", idempotency_key="k1"))
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert done.status_code == 200
    assert done.json() == {"id": first.json()["id"], "status": "succeeded"}
    assert len(stored(daemon.store_path)) == 1


async def test_cancel_queued_and_running_jobs(tmp_path: Path) -> None:
    """A cancelled queued job never starts; a running one's upstream request is cancelled."""
    fake = OpenAIFake(api_key="sk-jobs")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        text = config_text(url, jobs_concurrency=1)
        async with running(tmp_path, text) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                first = await submit(http, "real", "first")
                [held] = await fake.wait_for_requests(1)
                second = await submit(http, "real", "second")
                cancelled = await http.delete(f"/v1/jobs/{second}")
                assert cancelled.status_code == 200
                assert cancelled.json()["status"] == "cancelled"
                stopped = await http.delete(f"/v1/jobs/{first}")
                assert stopped.json()["status"] == "cancelled"
                await held.finished.wait()
                assert held.disconnected
                release.set()
                third = await finished(http, await submit(http, "real", "third"))
                again = await http.delete(f"/v1/jobs/{third['id']}")
                sample = daemon.registry.get_sample_value
                assert sample("dispatcher_job_completions_total", {"outcome": "cancelled"}) == 2
    assert third["status"] == "succeeded"
    assert again.json()["status"] == "succeeded"  # a finished job stays as it is
    contents = [r.json["messages"][0]["content"] for r in fake.requests]
    assert contents == ["first", "third"]  # "second" never started


async def test_long_poll_wakes_when_the_job_finishes(tmp_path: Path) -> None:
    """`?wait=` answers as soon as the job is terminal, not when the wait runs out."""
    fake = OpenAIFake(api_key="sk-jobs")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        async with running(tmp_path, config_text(url)) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                job_id = await submit(http, "real")
                await fake.wait_for_requests(1)
                now = await http.get(f"/v1/jobs/{job_id}", params={"wait": 0})
                assert now.json()["status"] == "running"
                polled: list[dict[str, Any]] = []

                async def poll() -> None:
                    response = await http.get(f"/v1/jobs/{job_id}", params={"wait": 300})
                    polled.append(response.json())

                async with anyio.create_task_group() as tg:
                    tg.start_soon(poll)
                    await anyio.wait_all_tasks_blocked()
                    assert not polled
                    release.set()
    [job] = polled
    assert job["status"] == "succeeded"


async def test_long_poll_times_out_with_the_current_state(tmp_path: Path) -> None:
    """A wait that runs out answers the job as it is."""
    fake = OpenAIFake(api_key="sk-jobs")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        async with running(tmp_path, config_text(url)) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                job_id = await submit(http, "real")
                await fake.wait_for_requests(1)
                response = await http.get(f"/v1/jobs/{job_id}", params={"wait": 0.01})
                release.set()
                await finished(http, job_id)
    assert response.json()["status"] == "running"


async def test_retention_sweep_removes_old_finished_jobs(tmp_path: Path) -> None:
    """Finished jobs stay retention_s, then the sweep (given an explicit now) removes them."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        with anyio.fail_after(10):
            job = await finished(http, await submit(http))
            assert await daemon.jobs.sweep(now=time.time() + 3600 - 60) == 0
            assert (await http.get(f"/v1/jobs/{job['id']}")).status_code == 200
            assert await daemon.jobs.sweep(now=time.time() + 3600 + 60) == 1
            gone = await http.get(f"/v1/jobs/{job['id']}")
            sample = daemon.registry.get_sample_value
            assert sample("dispatcher_jobs", {"status": "succeeded"}) == 0
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "job_not_found"


async def test_metadata_never_reaches_the_provider(tmp_path: Path) -> None:
    """metadata, priority, timeout and the key stay in the envelope; the body is the request."""
    fake = OpenAIFake(api_key="sk-jobs")
    async with serve_app(fake) as url:
        async with running(tmp_path, config_text(url)) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                body = job_body(
                    "real",
                    "hi",
                    metadata={"tenant": "acme-marker-7"},
                    idempotency_key="key-marker-9",
                    priority=3,
                    timeout_s=30,
                )
                response = await http.post("/v1/jobs", json=body)
                job = await finished(http, response.json()["id"])
    assert job["status"] == "succeeded"
    assert job["metadata"] == {"tenant": "acme-marker-7"}
    [sent] = fake.requests
    assert b"marker" not in sent.body
    assert set(sent.json) == {"model", "messages"}


async def test_unknown_job_is_404(tmp_path: Path) -> None:
    """GET and DELETE of an id nobody submitted answer 404 in OpenAI's shape."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        got = await http.get("/v1/jobs/job_nope")
        deleted = await http.delete("/v1/jobs/job_nope")
        put = await http.put("/v1/jobs/job_nope")
    for response in (got, deleted):
        assert response.status_code == 404
        error_ = response.json()["error"]
        assert error_["code"] == "job_not_found" and "job_nope" in error_["message"]
    assert put.status_code == 405


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        pytest.param(b"{not json", 400, "invalid_json", None, id="not-json"),
        pytest.param(b"{}", 400, "missing_required_parameter", "request", id="no-request"),
        pytest.param(
            b'{"request": {"model": "mini", "messages": [{"role": "user", "content": "x"}]},'
            b' "color": "red"}',
            400,
            "unknown_parameter",
            "color",
            id="unknown-envelope-field",
        ),
        pytest.param(
            b'{"request": {"model": "mini", "messages": []}}',
            400,
            "invalid_request",
            "request.messages",
            id="empty-messages",
        ),
        pytest.param(
            b'{"request": {"model": "mini", "messages": [{"role": "robot", "content": "x"}]}}',
            400,
            "invalid_request",
            "request.messages[0].role",
            id="bad-role",
        ),
        pytest.param(
            b'{"request": {"model": "mini", "routing": {"a": "b"},'
            b' "messages": [{"role": "user", "content": "x"}]}}',
            400,
            "unknown_parameter",
            "request.routing",
            id="unknown-field-inside-the-request",
        ),
        pytest.param(
            b'{"request": {"model": "mini", "messages": [{"role": "user", "content": "x"}]},'
            b' "metadata": {"n": 1}}',
            400,
            "invalid_request",
            "metadata[...]",
            id="metadata-not-strings",
        ),
        pytest.param(
            b'{"request": {"model": "mini", "messages": [{"role": "user", "content": "x"}]},'
            b' "timeout_s": -1}',
            400,
            "invalid_request",
            "timeout_s",
            id="negative-timeout",
        ),
        pytest.param(
            b'{"request": {"model": "mini", "stream": true,'
            b' "messages": [{"role": "user", "content": "x"}]}}',
            400,
            "invalid_request",
            "request.stream",
            id="stream",
        ),
        pytest.param(
            b'{"request": {"model": "nope", "messages": [{"role": "user", "content": "x"}]}}',
            404,
            "model_not_found",
            None,
            id="unknown-model",
        ),
    ],
)
async def test_malformed_job_bodies(
    tmp_path: Path, body: bytes, status: int, code: str, param: str | None
) -> None:
    """Each malformed submission gets a precise error naming the parameter; none is stored."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        response = await http.post(
            "/v1/jobs", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == status, response.text
    error_ = response.json()["error"]
    assert (error_["code"], error_["param"]) == (code, param)
    assert stored(daemon.store_path) == {}


async def test_listing_and_status(tmp_path: Path) -> None:
    """GET /v1/jobs lists newest first (filtered, limited); /v1/status counts by status."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        with anyio.fail_after(10):
            ids = [await submit(http, text=str(n)) for n in range(3)]
            for job_id in ids:
                await finished(http, job_id)
            listed = (await http.get("/v1/jobs", params={"limit": 2})).json()
            succeeded = (await http.get("/v1/jobs", params={"status": "succeeded"})).json()
            queued = (await http.get("/v1/jobs", params={"status": "queued"})).json()
            bad = await http.get("/v1/jobs", params={"status": "done"})
            bad_limit = await http.get("/v1/jobs", params={"limit": "0"})
            bad_wait = await http.get(f"/v1/jobs/{ids[0]}", params={"wait": "soon"})
            status = (await http.get("/v1/status")).json()
    assert [job["id"] for job in listed["data"]] == ids[:0:-1]
    assert listed["has_more"] is True
    assert len(succeeded["data"]) == 3 and queued["data"] == []
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "status")
    assert (bad_limit.status_code, bad_limit.json()["error"]["param"]) == (400, "limit")
    assert (bad_wait.status_code, bad_wait.json()["error"]["param"]) == (400, "wait")
    assert status["jobs"]["succeeded"] == 3 and status["jobs"]["queued"] == 0


async def test_priority_runs_higher_first(tmp_path: Path) -> None:
    """Among queued jobs the higher priority starts first, then the older."""
    fake = OpenAIFake(api_key="sk-jobs")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        text = config_text(url, jobs_concurrency=1)
        async with running(tmp_path, text) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                ids = [await submit(http, "real", "first")]
                await fake.wait_for_requests(1)
                ids.append(await submit(http, "real", "low-old", priority=0))
                ids.append(await submit(http, "real", "low-new", priority=0))
                ids.append(await submit(http, "real", "high", priority=5))
                release.set()
                for job_id in ids:
                    await finished(http, job_id)
    contents = [r.json["messages"][0]["content"] for r in fake.requests]
    assert contents == ["first", "high", "low-old", "low-new"]


async def test_failed_job_carries_the_error_body(tmp_path: Path) -> None:
    """A DispatchError fails the job with the live request's error body and its status."""
    fake = OpenAIFake(api_key="sk-jobs")
    fake.script(error(500, {"error": {"message": "boom", "type": "server_error"}}))
    async with serve_app(fake) as url:
        async with running(tmp_path, config_text(url)) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                job = await finished(http, await submit(http, "real"))
            sample = daemon.registry.get_sample_value
            assert sample("dispatcher_job_completions_total", {"outcome": "server_error"}) == 1
    assert job["status"] == "failed"
    assert job["error"]["code"] == "all_attempts_failed"
    assert job["error"]["http_status"] == 502
    assert job["attempts"][0]["outcome"] == "server_error"
    assert "result" not in job


async def test_no_capacity_keeps_the_job_queued(tmp_path: Path) -> None:
    """A job that finds every deployment cooling down stays queued and runs when it reopens."""
    fake = OpenAIFake(api_key="sk-jobs")
    fake.script(error(500, {"error": {"message": "boom", "type": "server_error"}}))
    router = "[router.cooldown]\nallowed_fails = 1\ncooldown_s = 0.3"
    async with serve_app(fake) as url:
        text = config_text(url, router=router)
        async with running(tmp_path, text) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                sync = await http.post("/v1/chat/completions", json=job_body("real")["request"])
                assert sync.status_code == 502  # the breaker is open now
                job_id = await submit(http, "real")
                await anyio.wait_all_tasks_blocked()
                early = (await http.get(f"/v1/jobs/{job_id}")).json()
                job = await finished(http, job_id)
    assert early["status"] == "queued"
    assert job["status"] == "succeeded"


async def test_live_requests_are_not_starved_by_a_backlog(tmp_path: Path) -> None:
    """Jobs leave a quarter of a deployment's workers (and its inbox) to live requests."""
    fake = OpenAIFake(api_key="sk-jobs")
    release = anyio.Event()
    fake.script(wait(release), wait(release), wait(release))
    async with serve_app(fake) as url:
        text = config_text(url, concurrency=4, jobs_concurrency=64)
        async with running(tmp_path, text) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                ids = [await submit(http, "real", f"job {n}") for n in range(20)]
                await fake.wait_for_requests(3)
                await anyio.wait_all_tasks_blocked()
                assert fake.statistics().in_flight == 3  # 4 workers - 4 // 4 kept for live
                assert daemon.jobs.statistics().queued == 17
                live = await http.post("/v1/chat/completions", json=job_body("real")["request"])
                assert live.status_code == 200
                release.set()
                jobs = [await finished(http, job_id) for job_id in ids]
    assert {job["status"] for job in jobs} == {"succeeded"}


async def test_shutdown_leaves_queued_jobs_and_the_next_start_runs_them(tmp_path: Path) -> None:
    """Stopping lets the running job finish and keeps the rest queued; a restart resumes them."""
    fake = OpenAIFake(api_key="sk-jobs")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        text = config_text(url, jobs_concurrency=1)
        with anyio.fail_after(15):
            async with running(tmp_path, text) as daemon, client(daemon) as http:
                ids = [await submit(http, "real", name) for name in ("a", "b", "c")]
                await fake.wait_for_requests(1)
                daemon.stop()
                await anyio.wait_all_tasks_blocked()
                release.set()
            path = daemon.store_path
            first = stored(path)
            async with running(tmp_path, text) as again, client(again) as http:
                jobs = [await finished(http, job_id) for job_id in ids]
    assert [first[job_id][0] for job_id in ids] == ["succeeded", "queued", "queued"]
    assert [job["status"] for job in jobs] == ["succeeded"] * 3
    assert [r.json["messages"][0]["content"] for r in fake.requests] == ["a", "b", "c"]


@pytest.mark.parametrize("kind", sorted(STORES))
async def test_the_daemon_runs_jobs_on_any_store(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Submit, deduplicate, run, cancel and restart over each store of the contract suite."""
    place = STORES[kind](tmp_path / "store", request.getfixturevalue)
    (tmp_path / "store").mkdir(mode=0o700)
    with anyio.fail_after(10):
        async with running_on(tmp_path, config_text(), place()) as daemon:
            async with client(daemon) as http:
                first = await submit(http, text="a", idempotency_key="k")
                again = await http.post("/v1/jobs", json=job_body(text="a", idempotency_key="k"))
                done = await finished(http, first)
        async with running_on(tmp_path, config_text(), place()) as daemon:
            async with client(daemon) as http:
                later = (await http.get(f"/v1/jobs/{first}")).json()
                listed = (await http.get("/v1/jobs")).json()["data"]
                status = (await http.get("/v1/status")).json()["jobs"]
    assert (again.status_code, again.json()["id"]) == (200, first)
    assert done["status"] == "succeeded"
    assert done["result"]["choices"][0]["message"]["content"] == "mock: a"
    assert later == done
    assert [job["id"] for job in listed] == [first]
    assert status["succeeded"] == 1


async def test_a_reload_reaches_the_jobs(tmp_path: Path) -> None:
    """After a reload jobs validate against and run on the new groups and deployments."""
    extra = '[[deployment]]\nname = "added"\ngroup = "extra"\nprovider = "mock"\nmodel = "m"\n'
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        with anyio.fail_after(10):
            before = await http.post("/v1/jobs", json=job_body("extra"))
            await daemon.reload(parse_config(config_text(extra=extra)))
            job = await finished(http, await submit(http, "extra", "after"))
    assert before.status_code == 404
    assert job["status"] == "succeeded"
    assert [a["deployment"] for a in job["attempts"]] == ["added"]


async def test_stopping_answers_long_polls_at_once(tmp_path: Path) -> None:
    """A long-poll in progress when the daemon stops answers now, with the job as it is."""
    fake = OpenAIFake(api_key="sk-jobs")
    release = anyio.Event()
    fake.script(wait(release))
    polled: list[dict[str, Any]] = []
    async with serve_app(fake) as url:
        async with running(tmp_path, config_text(url)) as daemon, client(daemon) as http:
            with anyio.fail_after(10):
                job_id = await submit(http, "real")
                await fake.wait_for_requests(1)

                async def poll() -> None:
                    response = await http.get(f"/v1/jobs/{job_id}", params={"wait": 300})
                    polled.append(response.json())

                async with anyio.create_task_group() as tg:
                    tg.start_soon(poll)
                    await anyio.wait_all_tasks_blocked()
                    assert not polled
                    daemon.stop()
                release.set()
    assert [job["status"] for job in polled] == ["running"]
