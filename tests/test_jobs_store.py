"""The job store: one clear error per broken file, exactly-once results, group commit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import msgspec
import pytest

from config import parse_config
from dispatcher import Daemon, DaemonError, StoreUnavailable
from dispatcher._jobsql import JobOutcome, NewJob
from dispatcher._jobstore import JobStore

from .jobsupport import client, config_text, job_body, running

pytestmark = pytest.mark.anyio


def new_job(n: int, key: str | None = None) -> NewJob:
    return NewJob(
        id=f"job_{n}",
        model="mini",
        request=b'{"model":"mini","messages":[{"role":"user","content":"x"}]}',
        digest=b"d",
        idempotency_key=key,
        metadata=None,
        timeout_s=None,
        priority=0,
        created_at=1000.0 + n,
    )


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
    """Two daemons never share a store: the second one refuses to start."""
    first = JobStore(tmp_path / "jobs.sqlite3")
    first.open()
    try:
        with pytest.raises(DaemonError, match="is in use by another daemon"):
            JobStore(tmp_path / "jobs.sqlite3").open()
    finally:
        first.close()
    JobStore(tmp_path / "jobs.sqlite3").open()  # released on close


async def test_store_file_is_private(tmp_path: Path) -> None:
    """Prompts and answers live in the store: it is created 0600."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.open()
    store.close()
    assert stat.S_IMODE((tmp_path / "jobs.sqlite3").stat().st_mode) == 0o600


async def test_store_files_are_made_private(tmp_path: Path) -> None:
    """A store, -wal and -shm left 0644 (by an older daemon, a copy) are 0600 once opened."""
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    store.open()
    store.close()
    for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"):
        (tmp_path / name).touch()
        os.chmod(tmp_path / name, 0o644)
    store = JobStore(path)
    store.open()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)
            assert await store.insert(new_job(1)) is None  # the WAL files are in use
            modes = file_modes(tmp_path)
            store.close_writes()
    finally:
        store.close()
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
        JobStore(folder / "jobs.sqlite3").open()
    assert f"chmod go-w {folder}" in str(caught.value)
    assert not (folder / "jobs.sqlite3").exists()


async def test_writer_survives_a_write_sqlite_cannot_take(tmp_path: Path) -> None:
    """A value sqlite3 cannot bind fails that write's caller; the writer goes on."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.open()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(store.run)
                too_big = msgspec.structs.replace(new_job(1), priority=2**63)
                async with anyio.create_task_group() as batch:  # alone, and in a batch
                    for job in (too_big, new_job(2), new_job(3)):
                        batch.start_soon(_insert_or_error, store, job)
                with pytest.raises(StoreUnavailable, match="too large"):
                    await store.insert(too_big)
                assert await store.insert(new_job(4)) is None
                rows = await store.recent(None, 10)
                store.close_writes()
    finally:
        store.close()
    assert sorted(row.id for row in rows) == ["job_2", "job_3", "job_4"]


async def _insert_or_error(store: JobStore, job: NewJob) -> None:
    try:
        await store.insert(job)
    except StoreUnavailable:
        assert job.priority == 2**63


async def test_full_store_answers_503_and_acknowledges_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When the store cannot take a job the submission is a 503, never a silent loss."""
    async with running(tmp_path, config_text()) as daemon, client(daemon) as http:
        conn = daemon.jobs.store._conn  # the writer's connection, idle between batches
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # as if the disk were full
        response = await http.post("/v1/jobs", json=job_body(text="x" * 200_000))
        conn.execute("PRAGMA max_page_count = 1073741823")
        listed = (await http.get("/v1/jobs")).json()
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "store_unavailable"
    assert "full" in error["message"]
    assert str(tmp_path) not in error["message"]  # the daemon's files are for its log only
    assert str(daemon.jobs.store.path) in caplog.text
    assert listed["data"] == []


async def test_terminal_state_is_written_exactly_once(tmp_path: Path) -> None:
    """A second completion (or a late cancel) cannot overwrite the first result."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.open()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)
            assert await store.insert(new_job(1)) is None
            first = JobOutcome(status="succeeded", finished_at=1.0, attempts=b"[]", result=b'"A"')
            second = JobOutcome(status="succeeded", finished_at=2.0, attempts=b"[]", result=b'"B"')
            cancel = JobOutcome(status="cancelled", finished_at=3.0, attempts=b"[]")
            assert await store.finish("job_1", first) is True
            assert await store.finish("job_1", second) is False
            assert await store.finish("job_1", cancel) is False
            row = await store.get("job_1")
            store.close_writes()
    finally:
        store.close()
    assert row is not None
    assert (row.status, row.result, row.finished_at) == ("succeeded", b'"A"', 1.0)


async def test_concurrent_submissions_share_commits(tmp_path: Path) -> None:
    """Many waiting inserts are committed together (group commit), each acknowledged."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.open()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)
            async with anyio.create_task_group() as submitters:
                for n in range(200):
                    submitters.start_soon(store.insert, new_job(n, key=f"k{n % 150}"))
            rows = await store.recent(None, 1000)
            store.close_writes()
    finally:
        store.close()
    assert len(rows) == 150  # 50 repeated keys named existing jobs
    assert store.committed_ops == 200
    assert store.commits < 20
