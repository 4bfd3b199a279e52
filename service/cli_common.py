"""What every `boneage` command shares: the consoles, and opening settings and the audit DB
with a clear message (exit code 2) instead of a traceback when an operator must act."""

from __future__ import annotations

import typer
from rich.console import Console

from service.audit import session as audit_session
from service.runtime import Runtime, open_runtime
from service.settings import Settings, SettingsError, load_settings

console = Console()
err = Console(stderr=True)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"[bold red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def runtime_or_exit(settings: Settings | None = None) -> Runtime:
    try:
        return open_runtime(settings or settings_or_exit())
    except audit_session.SchemaOutOfDate as exc:
        err.print(f"[bold red]cannot start:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
