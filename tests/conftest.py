"""Fixtures: the audit backend (embedded SQLite default or PostgreSQL), running services."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.audit.session import make_engine, make_session_factory, upgrade
from tests.databases import fresh_postgres_database, postgres_reachable
from tests.peers import RedisServer, ServiceProcess, need


@dataclass
class Backend:
    """Where the service under test keeps its audit DB."""

    name: str
    url: str | None  # None: the embedded default (SQLite under the var dir, self-migrating)
    env: dict[str, str] = field(default_factory=dict)

    def sessions(self, var_dir: Path) -> sessionmaker[Session]:
        url = self.url or f"sqlite:///{(var_dir / 'audit.sqlite3').resolve()}"
        return make_session_factory(make_engine(url))


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    problem = postgres_reachable()
    need(problem is None, problem or "")
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", None)
        return
    url = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    upgrade(engine)  # the admin's `boneage db upgrade`; the service never migrates PostgreSQL
    engine.dispose()
    yield Backend("postgres", url, {"BONEAGE_DATABASE_URL": url})


@pytest.fixture
def start_service(
    tmp_path: Path, backend: Backend
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start `boneage serve` processes against the test's backend; all stopped at the end."""
    started: list[ServiceProcess] = []

    def start(var_dir: Path | None = None, **env: str) -> ServiceProcess:
        service = ServiceProcess(var_dir or tmp_path / "var", {**backend.env, **env})
        started.append(service.start())
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what each test needs from its fixtures, so `-m "not postgres"` and the like
    select tests by the servers they use (modules that run dcmtk say so themselves)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres_database" in fixtures or params.get("backend") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if "redis_server" in fixtures:
            item.add_marker(pytest.mark.redis)
