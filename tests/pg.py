"""Throw-away PostgreSQL databases on the local server (127.0.0.1:5432, trust auth, user postgres)."""
from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator

import pytest

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def _admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(ADMIN_DSN, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def database(prefix: str = "genas_test") -> Iterator[str]:
    """A new database for one test, dropped afterwards (its connections terminated first)."""
    try:
        import psycopg2  # noqa: F401
        _admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - no server or no driver
        message = f"PostgreSQL at 127.0.0.1:5432 not reachable ({exc}); start it or pip install -e '.[test]'"
        if os.environ.get("GENAS_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        _admin(f'DROP DATABASE IF EXISTS "{name}"')
