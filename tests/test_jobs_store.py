"""The SQLite job store: one clear error per broken file, private files, a writer that groups
commits, pushes back when full and survives a bad write. (Its contract: test_jobs_contract.)"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from config import parse_config
from dispatcher import Daemon, DaemonError, StoreUnavailable
from dispatcher.jobs import NewJob, Outcome, SqliteJobStore

from .jobstores import new_job, running_store
from .jobsupport import client, config_text, job_body, running

pytestmark = pytest.mark.anyio

CANCELLED = Outcome(status="cancelled", finished_at=1.0)


async def test_corrupt_store_is_a_precise_error_at_start(tmp_path: Path) -> None:
    """A store file that is not a database stops the start, naming the file and the reason."""
    store = tmp_path / "run" / "jobs.sqlite3"
    store.parent.mkdir()
    store.write_bytes(b"definitely not sqlite " * 512)
    daemon = Daemon(parse_config(config_text()), tmp_path)
    with pytest.raises(DaemonError) as info:
        await daemon.run()
    assert str(store) in str(info.value)
    assert "file is not a database" in str(info.value)
    assert store.read_bytes().startswith(b"definitely not sqlite")  # left alone
    assert not daemon.socket_path.exists()


async def test_store_in_use_by_another_daemon(tmp_path: Path) -> None:
    """Two daemons never share a store: the second one refuses to start, naming the lock."""
    first = SqliteJobStore(tmp_path / "jobs.sqlite3")
    await first.open()
    try:
        with pytest.raises(DaemonError, match=r"is in use by another daemon \(lock on .*\.lock"):
            await SqliteJobStore(tmp_path / "jobs.sqlite3").open()
    finally:
        first.close()
    async with running_store(SqliteJobStore(tmp_path / "jobs.sqlite3")):  # released on close
        pass


async def test_store_file_is_private(tmp_path: Path) -> None:
    """Prompts and answers live in the store: it is created 0600."""
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    store.close()
    assert stat.S_IMODE((tmp_path / "jobs.sqlite3").stat().st_mode) == 0o600


async def test_store_files_are_made_private(tmp_path: Path) -> None:
    """A store, -wal and -shm left 0644 (by an older daemon, a copy) are 0600 once opened."""
    path = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(path)
    await store.open()
    store.close()
    for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"):
        (tmp_path / name).touch()
        os.chmod(tmp_path / name, 0o644)
    async with running_store(SqliteJobStore(path)) as store:
        assert await store.insert(new_job(1)) is None  # the WAL files are in use
        modes = file_modes(tmp_path)
    assert modes == dict.fromkeys(
        ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm", "jobs.sqlite3.lock"), 0o600
    )


def file_modes(folder: Path) -> dict[str, int]:
    return {f.name: stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()}


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o702], ids=oct)
async def test_store_folder_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """A store folder writable by group or others (sticky or not) refuses to start."""
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, mode)
    with pytest.raises(DaemonError, match="writable by other users") as caught:
        await SqliteJobStore(folder / "jobs.sqlite3").open()
    assert f"chmod go-w {folder}" in str(caught.value)
    assert not (folder / "jobs.sqlite3").exists()


async def test_writer_survives_a_write_sqlite_cannot_take(tmp_path: Path) -> None:
    """A value sqlite3 cannot bind fails that write's caller; the writer goes on."""
    too_big = new_job(1, priority=2**63)
    with anyio.fail_after(10):
        async with running_store(SqliteJobStore(tmp_path / "jobs.sqlite3")) as store:
            async with anyio.create_task_group() as batch:  # alone, and in a batch
                for job in (too_big, new_job(2), new_job(3)):
                    batch.start_soon(_insert_or_error, store, job)
            with pytest.raises(StoreUnavailable, match="too large"):
                await store.insert(too_big)
            assert await store.insert(new_job(4)) is None
            rows = await store.recent(None, 10)
            stats = store.statistics()
    assert sorted(row.id for row in rows) == ["job_2", "job_3", "job_4"]
    assert (stats.writes, stats.failed_writes) == (3, 2)


async def _insert_or_error(store: SqliteJobStore, job: NewJob) -> None:
    try:
        await store.insert(job)
    except StoreUnavailable:
        assert job.priority == 2**63


async def test_full_store_answers_503_and_acknowledges_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When the store cannot take a job the submission is a 503, never a silent loss."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        store = daemon.jobs.store
        assert isinstance(store, SqliteJobStore)
        conn = store._conn  # the writer's connection, idle between batches
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # as if the disk were full
        response = await http.post("/v1/jobs", json=job_body(text="x" * 200_000))
        conn.execute("PRAGMA max_page_count = 1073741823")
        listed = (await http.get("/v1/jobs")).json()
    assert response.status_code == 503
    assert "retry-after" not in response.headers  # waiting does not free a disk
    error = response.json()["error"]
    assert error["code"] == "store_unavailable"
    assert "full" in error["message"]
    assert str(tmp_path) not in error["message"]  # the daemon's files are for its log only
    assert str(daemon.store_path) in caplog.text
    assert listed["data"] == []


async def test_concurrent_submissions_share_commits(tmp_path: Path) -> None:
    """Many waiting inserts are committed together (group commit), each acknowledged."""
    async with running_store(SqliteJobStore(tmp_path / "jobs.sqlite3")) as store:
        async with anyio.create_task_group() as submitters:
            for n in range(200):
                submitters.start_soon(store.insert, new_job(n, key=f"k{n % 150}"))
        rows = await store.recent(None, 1000)
        stats = store.statistics()
    assert len(rows) == 150  # 50 repeated keys named existing jobs
    assert stats.writes == 200
    assert stats.commits < 20


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock: the writer's BEGIN waits on it."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_full_inbox_refuses_submissions_and_answers_the_queued_ones(
    tmp_path: Path,
) -> None:
    """A writer that cannot keep up refuses inserts (Retry-After), finish waits for room, and
    every accepted write is answered once it can write again: never unbounded memory."""
    path = tmp_path / "jobs.sqlite3"
    answers: list[object] = []
    with anyio.fail_after(10):
        async with running_store(SqliteJobStore(path, inbox=4)) as store:
            await store.insert(new_job(0))

            async def write(job: NewJob) -> None:
                answers.append(await store.insert(job))

            async with anyio.create_task_group() as tg:
                with locked(path):
                    tg.start_soon(write, new_job(1))  # taken by the writer, which waits
                    await wait_until(lambda: store.statistics().writing == 1)
                    for n in range(2, 6):
                        tg.start_soon(write, new_job(n))  # fill the inbox (4)
                    await wait_until(lambda: store.statistics().inbox_used == 4)
                    with pytest.raises(StoreUnavailable) as refused:
                        await store.insert(new_job(6))
                    finishing = anyio.Event()

                    async def finish() -> None:
                        answers.append(await store.finish("job_0", CANCELLED))
                        finishing.set()

                    tg.start_soon(finish)  # waits for room instead
                    await anyio.wait_all_tasks_blocked()
                    assert store.statistics().inbox_used == 4 and not finishing.is_set()
            rows = await store.recent(None, 10)
    assert refused.value.retry_after == 1.0
    assert "busy" in str(refused.value)
    assert answers == [None] * 5 + [True]
    assert sorted(row.id for row in rows) == [f"job_{n}" for n in range(6)]


async def wait_until(condition: Callable[[], bool]) -> None:
    """Let other tasks (and the writer's thread) run until `condition` holds."""
    while not condition():
        await anyio.wait_all_tasks_blocked()
        await anyio.lowlevel.checkpoint()


V1_ERRORS = {
    "job_a": {
        "message": "all 1 attempts for 'real' failed (last: server_error)",
        "type": "upstream_error",
        "code": "all_attempts_failed",
        "param": None,
        "attempts": [
            {
                "deployment": "up",
                "outcome": "server_error",
                "status": 500,
                "latency_ms": 1.5,
                "message": "boom",
            }
        ],
        "http_status": 502,
    },
    "job_b": {
        "message": "prompt is too long",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
        "param": None,
        "attempts": [
            {
                "deployment": "up",
                "outcome": "context_window_exceeded",
                "status": 400,
                "latency_ms": 2.0,
                "message": "prompt is too long",
            }
        ],
        "http_status": 400,
    },
    "job_c": {
        "message": "stored request no longer valid: Expected `str`",
        "type": "invalid_request_error",
        "code": "invalid_request",
        "param": None,
        "http_status": 400,
    },
}


async def test_a_version_1_store_shows_its_failed_jobs_as_before(tmp_path: Path) -> None:
    """Version 1 stored a failed job's HTTP error body; opened now, each shows the same error."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    with contextlib.closing(sqlite3.connect(folder / "jobs.sqlite3")) as conn:
        conn.executescript(V1_SCHEMA)
        for n, (job_id, error) in enumerate(V1_ERRORS.items()):
            attempts = [
                {k: v for k, v in a.items() if k != "message"} for a in error.get("attempts", [])
            ]
            conn.execute(
                "INSERT INTO jobs (id, status, model, priority, digest, request, created_at, "
                "finished_at, attempts, error) VALUES (?, 'failed', 'real', 0, x'00', '{}', ?, "
                "?, ?, ?)",
                (job_id, 1000.0 + n, 2000.0 + n, json.dumps(attempts), json.dumps(error)),
            )
        conn.commit()
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        shown = {job_id: (await http.get(f"/v1/jobs/{job_id}")).json() for job_id in V1_ERRORS}
    for job_id, error in V1_ERRORS.items():
        assert shown[job_id]["error"] == error
        assert [a["outcome"] for a in shown[job_id]["attempts"]] == [
            a["outcome"] for a in error.get("attempts", [])
        ]
    with contextlib.closing(sqlite3.connect(daemon.store_path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3


V1_SCHEMA = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
    model TEXT NOT NULL, priority INTEGER NOT NULL, idempotency_key TEXT UNIQUE,
    digest BLOB NOT NULL, request BLOB NOT NULL, metadata BLOB, timeout_s REAL,
    created_at REAL NOT NULL, finished_at REAL, attempts BLOB, result BLOB, error BLOB
);
CREATE INDEX jobs_by_status ON jobs (status, seq);
CREATE INDEX jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;
PRAGMA user_version = 1;
"""


async def test_stop_commits_and_answers_the_writes_still_in_the_inbox(tmp_path: Path) -> None:
    """Writes waiting in the inbox when the store stops are committed and answered, none lost;
    a later write is refused."""
    path = tmp_path / "jobs.sqlite3"
    answers: list[object] = []
    store = SqliteJobStore(path)
    await store.open()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(store.run)

                async def write(job: NewJob) -> None:
                    answers.append(await store.insert(job))

                with locked(path):
                    tg.start_soon(write, new_job(0))
                    await wait_until(lambda: store.statistics().writing == 1)
                    for n in range(1, 30):
                        tg.start_soon(write, new_job(n))
                    await wait_until(lambda: store.statistics().inbox_used == 29)
                    store.stop()
                    with pytest.raises(StoreUnavailable, match="closed"):
                        await store.insert(new_job(99))
        stats = store.statistics()
    finally:
        store.close()
    assert answers == [None] * 30
    assert (stats.writes, stats.commits) == (30, 2)  # the one in flight, then the 29 queued
    async with running_store(SqliteJobStore(path)) as again:
        assert len(await again.unfinished()) == 30


async def test_a_mark_reaches_the_file_within_the_mark_delay_without_other_writes(
    tmp_path: Path,
) -> None:
    """A running job shows as running in the file though nothing else is written."""
    path = tmp_path / "jobs.sqlite3"
    with anyio.fail_after(5):
        async with running_store(SqliteJobStore(path)) as store:
            await store.insert(new_job(1))
            store.mark("job_1", "running")
            assert store.statistics().marks_pending == 1
            await wait_until(lambda: store.statistics().commits == 2)  # the insert's, then
            with contextlib.closing(sqlite3.connect(path)) as conn:
                [(status,)] = conn.execute("SELECT status FROM jobs").fetchall()
    assert status == "running"
