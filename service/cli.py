"""`boneage`: the command line, and the one place that wires the whole system together.

`serve` chooses how work is carried (embedded threads, or Celery when BONEAGE_BROKER_URL is
set) and hands that to the service; that choice is why this module, alone in `service`, may
import `worker`.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from service.audit import session as audit_session
from service.audit.tables import Association, Instance, InstanceStatus
from service.logs import setup_logging
from service.receiver import count_by_status
from service.runtime import Runtime, open_runtime
from service.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="Bone-age assessment service for PACS.", no_args_is_help=True)
db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)
audit_app = typer.Typer(help="What arrived and what happened to it.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"[bold red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _runtime(settings: Settings) -> Runtime:
    try:
        return open_runtime(settings)
    except audit_session.SchemaOutOfDate as exc:
        err.print(f"[bold red]cannot start:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def serve() -> None:
    """Receive radiographs over DICOM and process them (embedded worker unless a broker is set)."""
    settings = _settings()
    setup_logging(settings.log_level, settings.log_dir)
    runtime = _runtime(settings)

    from service import handoff
    from service.server import Service

    runner = None
    if settings.broker_url:
        from worker.app import CeleryDispatcher, create_app

        submit = CeleryDispatcher(create_app(settings.broker_url)).submit
        stale = timedelta(hours=1)  # other workers may be busy with PROCESSING ones
    else:
        from worker.embedded import EmbeddedRunner

        runner = EmbeddedRunner(
            lambda instance_id: handoff.process_instance(runtime.sessions, instance_id),
            settings.embedded_workers,
        )
        submit = runner.submit
        stale = timedelta(0)  # nobody else can be processing: all PROCESSING rows are stale

    service = Service(runtime, submit, stale_processing_after=stale)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if runner is not None:
        runner.start()
    try:
        service.start()
    except OSError as exc:
        err.print(f"[bold red]cannot listen on {settings.bind}:{settings.port}:[/] {exc}")
        raise typer.Exit(1) from None
    stop.wait()
    service.stop()
    if runner is not None:
        runner.stop()


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run a Celery worker for the `inference` and `delivery` queues (needs BONEAGE_BROKER_URL)."""
    settings = _settings()
    if not settings.broker_url:
        err.print("[bold red]BONEAGE_BROKER_URL is not set:[/] `boneage serve` runs the "
                  "embedded worker by itself; a Celery worker needs a broker.")
        raise typer.Exit(2)
    setup_logging(settings.log_level, settings.log_dir)
    _runtime(settings).engine.dispose()  # fail fast on a schema behind head
    from worker.app import DELIVERY_QUEUE, INFERENCE_QUEUE, create_app

    create_app(settings.broker_url).worker_main([
        "worker", "--loglevel", settings.log_level, "--concurrency", str(concurrency),
        "-Q", f"{INFERENCE_QUEUE},{DELIVERY_QUEUE}", "--without-gossip", "--without-mingle",
    ])


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations to the configured audit database."""
    settings = _settings()
    engine = audit_session.make_engine(settings.effective_database_url)
    before = audit_session.current_revision(engine)
    audit_session.upgrade(engine, revision)
    after = audit_session.current_revision(engine)
    console.print(f"audit database: {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the audit database and the code's head."""
    settings = _settings()
    engine = audit_session.make_engine(settings.effective_database_url)
    current = audit_session.current_revision(engine)
    head = audit_session.head_revision()
    console.print(f"database: {current or 'empty'}   code head: {head}")
    if current != head:
        raise typer.Exit(1)


def _audit_runtime() -> Runtime:
    settings = _settings()
    return _runtime(settings)


def _instance_summary(row: Instance) -> dict[str, Any]:
    return {
        "id": row.id,
        "received_at": row.received_at.isoformat(),
        "status": row.status.value,
        "status_reason": row.status_reason,
        "response_status": None if row.response_status is None else f"0x{row.response_status:04X}",
        "sop_class_uid": row.sop_class_uid,
        "modality": row.modality,
        "version": row.version,
        "size_bytes": row.size_bytes,
        "calling_ae": row.association.calling_ae if row.association else None,
    }


@audit_app.command("list")
def audit_list(
    status: Annotated[InstanceStatus | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """Received instances, newest first."""
    runtime = _audit_runtime()
    query = select(Instance).options(selectinload(Instance.association))
    if status is not None:
        query = query.where(Instance.status == status)
    with runtime.sessions() as session:
        rows = session.scalars(query.order_by(Instance.id.desc()).limit(limit)).all()
        summaries = [_instance_summary(row) for row in rows]
    if as_json:
        for summary in summaries:
            print(json.dumps(summary))
        return
    table = Table("id", "received", "status", "from", "modality", "MB", "reason")
    for s in summaries:
        table.add_row(
            str(s["id"]), s["received_at"][:19], s["status"], s["calling_ae"] or "-",
            s["modality"] or "-",
            f"{s['size_bytes'] / 1e6:.1f}" if s["size_bytes"] else "-",
            (s["status_reason"] or "")[:60],
        )
    console.print(table)


@audit_app.command("show")
def audit_show(
    instance_id: int,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Everything recorded about one instance, with its status history."""
    runtime = _audit_runtime()
    with runtime.sessions() as session:
        row = session.get(Instance, instance_id, options=[selectinload(Instance.events),
                                                          selectinload(Instance.association)])
        if row is None:
            err.print(f"no instance {instance_id}")
            raise typer.Exit(1)
        detail = _instance_summary(row) | {
            "sop_instance_uid": row.sop_instance_uid,
            "study_instance_uid": row.study_instance_uid,
            "series_instance_uid": row.series_instance_uid,
            "accession_number": row.accession_number,
            "patient_id": row.patient_id,
            "transfer_syntax_uid": row.transfer_syntax_uid,
            "sha256": row.sha256,
            "spool_path": row.spool_path,
            "duplicate_of": row.duplicate_of_id,
            "association": None if row.association is None else {
                "id": row.association.id,
                "calling_ae": row.association.calling_ae,
                "peer": f"{row.association.peer_address}:{row.association.peer_port}",
            },
            "events": [
                {"at": e.at.isoformat(), "status": e.status.value, "detail": e.detail}
                for e in row.events
            ],
        }
    if as_json:
        print(json.dumps(detail, indent=2))
        return
    for key, value in detail.items():
        if key != "events":
            console.print(f"[bold]{key}[/]: {value}", highlight=False)
    table = Table("at", "status", "detail", title="history")
    for event in detail["events"]:
        table.add_row(event["at"][:23], event["status"], event["detail"] or "")
    console.print(table)


@audit_app.command("stats")
def audit_stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Counts by status, associations by outcome, bytes received."""
    runtime = _audit_runtime()
    with runtime.sessions() as session:
        stats = {
            "instances_by_status": count_by_status(session),
            "associations_by_outcome": {
                outcome.value: count
                for outcome, count in session.execute(
                    select(Association.outcome, func.count()).group_by(Association.outcome)
                )
            },
            "bytes_received": int(session.scalar(select(func.sum(Instance.size_bytes))) or 0),
        }
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    table = Table("what", "count")
    for status, count in sorted(stats["instances_by_status"].items()):
        table.add_row(f"instances {status}", str(count))
    for outcome, count in sorted(stats["associations_by_outcome"].items()):
        table.add_row(f"associations {outcome}", str(count))
    table.add_row("MB received", f"{stats['bytes_received'] / 1e6:.1f}")
    console.print(table)


@app.command()
def phantoms(
    out: Annotated[Path, typer.Argument(help="Directory to write (created).")],
    count: Annotated[int, typer.Option(help="How many phantoms.")] = 100,
    size: Annotated[int, typer.Option(help="Image size in pixels (square).")] = 1024,
    seed: Annotated[int, typer.Option(help="Same seed, same images.")] = 0,
    labels: Annotated[Path | None, typer.Option(
        help="RSNA label CSV to draw ages and sexes from (real prevalence).")] = None,
    dicom: Annotated[bool, typer.Option(help="Also write DX DICOM files.")] = False,
) -> None:
    """Write synthetic hand radiographs: PNG + labels.csv in the RSNA layout (and DICOM)."""
    from rich.progress import Progress

    from service.phantoms import write_phantom_set

    with Progress(console=err) as bar:
        task = bar.add_task("rendering phantoms", total=count)
        written = write_phantom_set(
            out, count, seed=seed, size=size, labels_source=labels, dicom=dicom,
            progress=lambda done: bar.update(task, completed=done),
        )
    console.print(f"wrote {len(written.labels)} synthetic phantoms to {out}")


@app.command("config")
def show_config() -> None:
    """The effective settings (environment, then BONEAGE_CONFIG_FILE, then defaults)."""
    settings = _settings()
    values = settings.model_dump()
    values["database_url"] = settings.effective_database_url
    for key, value in values.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        console.print(f"BONEAGE_{key.upper()}={shown}", highlight=False)


def main() -> None:
    app()
