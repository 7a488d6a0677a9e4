"""A lock per study that every worker sees, whatever the storage: what makes a claim atomic.

Optuna's storages offer no compare-and-set a sampler could build on, so the lock comes from the
same place the study lives: a PostgreSQL advisory lock or MySQL's ``GET_LOCK`` for a database
server, an ``flock`` on a file beside the SQLite database or the journal, and a process-local
lock for an in-memory study.
"""
from __future__ import annotations

import fcntl
import hashlib
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from genas.errors import GenasError

_LOCAL: dict[str, threading.Lock] = {}
WAIT_S = 600  # a lock held longer than this is a stuck worker, not a busy one


def _key(study_name: str) -> int:
    """A stable signed 64-bit key (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha1(f"genas:{study_name}".encode()).digest()[:8], "big", signed=True)


class StudyLock:
    """``with StudyLock(storage_url, study_name).hold():`` holds the study's lock across processes."""

    def __init__(self, url: str | None, study_name: str) -> None:
        self.url, self.study_name = url or "", study_name
        self._engine = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        url = self.url
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            with _flock(Path(url.removeprefix("sqlite:///")).with_suffix(".genas-lock")):
                yield
        elif url.startswith("journal:"):
            with _flock(Path(url.removeprefix("journal:") + ".genas-lock")):
                yield
        elif url.startswith(("postgresql", "mysql")):
            with self._database_lock():
                yield
        else:
            with _LOCAL.setdefault(self.study_name, threading.Lock()):
                yield

    @contextmanager
    def _database_lock(self) -> Iterator[None]:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        if self._engine is None:
            self._engine = create_engine(self.url, poolclass=NullPool)
        with self._engine.connect() as conn:
            if self.url.startswith("postgresql"):
                conn.execute(text("SELECT set_config('lock_timeout', :ms, false)"), {"ms": f"{WAIT_S * 1000}"})
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _key(self.study_name)})
                release = text("SELECT pg_advisory_unlock(:k)")
            else:
                got = conn.execute(text("SELECT GET_LOCK(:k, :t)"), {"k": f"genas:{self.study_name}"[:64],
                                                                     "t": WAIT_S}).scalar()
                if got != 1:
                    raise GenasError(f"could not take the lock of study {self.study_name!r} in {WAIT_S} s; "
                                     "another worker holds it: check for a stuck `genas worker`")
                release = text("SELECT RELEASE_LOCK(:k)")
            try:
                yield
            finally:
                conn.execute(release, {"k": _key(self.study_name) if self.url.startswith("postgresql")
                                       else f"genas:{self.study_name}"[:64]})
                conn.commit()


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
