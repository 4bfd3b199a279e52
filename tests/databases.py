"""A fresh PostgreSQL database for one test or one benchmark run, migrated to head and dropped
afterwards: the conftest fixture and bench/chaos.py and bench/scale.py share it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "BONEAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_reachable() -> str | None:
    """None when the server answers, else why not."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("select 1"))
        return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} not reachable: {type(exc).__name__}"
    finally:
        admin.dispose()


@contextmanager
def fresh_postgres_database(prefix: str = "boneage_t") -> Iterator[str]:
    """Yields the URL of a new, empty database (not migrated: callers decide)."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def only_backend(name: str) -> pytest.MarkDecorator:
    """Run a test on one audit backend ("sqlite" or "postgres") instead of both, where what it
    checks does not depend on the database."""
    return pytest.mark.parametrize("backend", [name], indirect=True)
