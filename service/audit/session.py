"""Engine, sessions and schema version checks for the audit database.

SQLite is the embedded default: it runs in WAL mode with synchronous=FULL because the C-STORE
success response is only sent after the audit row is committed, and that promise must survive a
power cut, not just a process crash. PostgreSQL is the production backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from alembic import command

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


class SchemaOutOfDate(RuntimeError):
    """The audit DB is behind the code's migrations; an admin must run `boneage db upgrade`."""


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: SQLite gets WAL and a long busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any exception."""
    with factory.begin() as session:
        yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"alembic/ has {len(heads)} heads; merge them")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> str:
    """Bring the schema to head when allowed, else refuse to run on an old schema.

    Only the embedded SQLite default upgrades itself: a shared production database is
    migrated by an admin, deliberately, with `boneage db upgrade`.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return head
    if auto_upgrade:
        upgrade(engine)
        return head
    raise SchemaOutOfDate(
        f"audit database schema is at {current or 'nothing (empty database)'}, "
        f"code needs {head}: run `boneage db upgrade`"
    )
