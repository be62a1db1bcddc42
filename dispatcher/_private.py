"""Private files: the folders of the socket and the job store, and the files in them.

The socket spends the provider keys and the store holds every prompt and answer, so
both live in a folder only their owner can change, and the store's files are 0600
whatever they were before.

The folder rule is OpenSSH's StrictModes: it must be owned by this user (or root) and
writable by nobody else (no g+w, no o+w; a sticky bit does not help, since another user
could still create `jobs.sqlite3-wal` or the socket's name there first). A folder that
breaks it is refused with a `DaemonError` saying how to fix it, never chmod-ed: it may
be a shared folder (/tmp, a project checkout) whose mode others rely on.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from ._exceptions import DaemonError


def private_folder(folder: Path, what: str) -> None:
    """Create `folder` (0700) when missing; refuse one that another user can change."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError as exc:
        raise DaemonError(f"cannot create {what} folder {folder}: {exc.strerror}") from None
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (os.geteuid(), 0):
        raise DaemonError(
            f"{what} folder {folder} belongs to another user (uid {info.st_uid}), who could "
            "replace its files; use a folder of your own"
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DaemonError(
            f"{what} folder {folder} is writable by other users (mode {mode:04o}), who could "
            f"replace its files; use a private folder or run: chmod go-w {folder}"
        )


def make_private(*paths: Path) -> None:
    """chmod 0600 each of `paths` that exists (left 0644 by another tool or an older daemon).

    SQLite creates a database's -wal and -shm with the database file's own mode, so a
    0600 database keeps its new companions private too.
    """
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(path.stat().st_mode) != 0o600:
                os.chmod(path, 0o600)
