"""`boneage db`: the audit database's schema, migrated by Alembic."""

from __future__ import annotations

import typer

from service.audit import session as audit_session
from service.cli_common import console, settings_or_exit

db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations to the configured audit database."""
    settings = settings_or_exit()
    engine = audit_session.make_engine(settings.effective_database_url)
    before = audit_session.current_revision(engine)
    audit_session.upgrade(engine, revision)
    after = audit_session.current_revision(engine)
    console.print(f"audit database: {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the audit database and the code's head."""
    settings = settings_or_exit()
    engine = audit_session.make_engine(settings.effective_database_url)
    current = audit_session.current_revision(engine)
    head = audit_session.head_revision()
    console.print(f"database: {current or 'empty'}   code head: {head}")
    if current != head:
        raise typer.Exit(1)
