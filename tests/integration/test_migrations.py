"""Alembic migrations: they build exactly the ORM's schema, and the service guards the version."""

from __future__ import annotations

import os
import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service.audit.session import (
    SchemaOutOfDate,
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
    upgrade,
)
from service.audit.tables import Base
from tests.peers import ServiceProcess, boneage_command


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    return request.getfixturevalue("postgres_database")


def test_migrations_build_the_orm_schema(empty_database_url):
    engine = make_engine(empty_database_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert drift == []


def test_configured_database_behind_head_is_refused(empty_database_url):
    engine = make_engine(empty_database_url)
    with pytest.raises(SchemaOutOfDate, match="boneage db upgrade"):
        ensure_schema(engine, auto_upgrade=False)
    assert ensure_schema(engine, auto_upgrade=True) == head_revision()


def test_serve_on_unmigrated_postgres_exits_and_db_upgrade_fixes_it(tmp_path, postgres_database):
    env = {**os.environ, "BONEAGE_DATABASE_URL": postgres_database}
    service = ServiceProcess(tmp_path / "var", {"BONEAGE_DATABASE_URL": postgres_database})
    result = subprocess.run(boneage_command("serve"), env=service.env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "boneage db upgrade" in result.stderr

    upgraded = subprocess.run(boneage_command("db", "upgrade"), env=env, capture_output=True,
                              text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    current = subprocess.run(boneage_command("db", "current"), env=env, capture_output=True,
                             text=True, timeout=60)
    assert current.returncode == 0 and head_revision() in current.stdout
    service.start()
    service.stop()
