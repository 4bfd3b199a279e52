"""`boneage`: the command line, and the one place that wires the whole system together.

`serve` chooses how work is carried (embedded threads, or Celery when BONEAGE_BROKER_URL is
set) and hands that to the service; that choice is why this module, alone in `service`, may
import `worker`.
"""

from __future__ import annotations

import json
import logging
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

from service import cli_models
from service.audit import session as audit_session
from service.audit.tables import (
    AssessmentRecord,
    Association,
    Delivery,
    Instance,
    InstanceStatus,
)
from service.logs import setup_logging
from service.receiver import count_by_status
from service.runtime import Runtime, open_runtime
from service.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="Bone-age assessment service for PACS.", no_args_is_help=True)
db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)
audit_app = typer.Typer(help="What arrived and what happened to it.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.command()(cli_models.train)
app.command()(cli_models.evaluate)
app.command()(cli_models.calibrate)
app.command()(cli_models.predict)

console = Console()
err = Console(stderr=True)


def _preload(runtime: Runtime) -> None:
    """Load the networks before the first image arrives, and say what they are."""
    log = logging.getLogger("service.cli")
    try:
        card = runtime.assessor().predictor.card
    except Exception:
        log.exception("the model could not be loaded; instances will be marked FAILED")
        return
    log.info("model %s %s loaded (weights %s)", card.name, card.version,
             card.weights_sha256[:12])
    if card.warning:
        log.warning("%s", card.warning)


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

    from service.outbox import Deliverer
    from service.processing import process_instance
    from service.server import Service

    deliverer = Deliverer(runtime.sessions, runtime.delivery_policy())
    outputs = runtime.output_policy(deliverer.wake)
    runner = None
    if settings.broker_url:
        from worker.app import CeleryDispatcher, create_app

        submit = CeleryDispatcher(create_app(settings.broker_url)).submit
        stale = timedelta(hours=1)  # other workers may be busy with PROCESSING ones
    else:
        from worker.embedded import EmbeddedRunner

        runner = EmbeddedRunner(
            lambda instance_id: process_instance(runtime.sessions, instance_id,
                                                 runtime.assessor, outputs),
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
        threading.Thread(target=_preload, args=(runtime,), name="preload", daemon=True).start()
    deliverer.start()
    try:
        service.start()
    except OSError as exc:
        err.print(f"[bold red]cannot listen on {settings.bind}:{settings.port}:[/] {exc}")
        raise typer.Exit(1) from None
    stop.wait()
    # An on-call engineer reading the log should see a clean stop, not a silent end.
    log = logging.getLogger("service.cli")
    log.info("stopping: no new associations; finishing the instances in hand")
    service.stop()
    if runner is not None:
        runner.stop()
    deliverer.stop()
    log.info("stopped")


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
            "assessments": [_assessment_detail(a) for a in session.scalars(
                select(AssessmentRecord).where(AssessmentRecord.instance_id == instance_id)
                .options(selectinload(AssessmentRecord.gates)).order_by(AssessmentRecord.id))],
            "deliveries": [_delivery_detail(d) for d in session.scalars(
                select(Delivery).where(Delivery.instance_id == instance_id)
                .order_by(Delivery.id))],
        }
    if as_json:
        print(json.dumps(detail, indent=2))
        return
    for key, value in detail.items():
        if key not in {"events", "assessments", "deliveries"}:
            console.print(f"[bold]{key}[/]: {value}", highlight=False)
    table = Table("at", "status", "detail", title="history")
    for event in detail["events"]:
        table.add_row(event["at"][:23], event["status"], event["detail"] or "")
    console.print(table)
    for assessment in detail["assessments"]:
        gates = Table("gate", "passed", "code", "value", "threshold",
                      title=f"assessment by {assessment['model']} ({assessment['status']})")
        for gate in assessment["gates"]:
            gates.add_row(gate["name"], "yes" if gate["passed"] else "NO", gate["code"] or "",
                          gate["value"] or "", gate["threshold"] or "")
        console.print(gates)
        for key in ("bone_age_months", "interval_95", "stage", "confidence", "sds",
                    "classification", "flags", "reason"):
            console.print(f"[bold]{key}[/]: {assessment[key]}", highlight=False)
    deliveries = Table("kind", "destination", "status", "attempts", "last error",
                       title="deliveries")
    for d in detail["deliveries"]:
        deliveries.add_row(d["kind"], d["destination"], d["status"], str(d["attempts"]),
                           d["last_error"] or "")
    console.print(deliveries)


def _assessment_detail(a: AssessmentRecord) -> dict[str, Any]:
    return {
        "model": f"{a.model_name} {a.model_version}", "weights_sha256": a.weights_sha256,
        "synthetic": a.synthetic, "status": a.status, "reason": a.reason,
        "reason_text": a.reason_text, "flags": a.flags.split(",") if a.flags else [],
        "bone_age_months": a.bone_age_months,
        "interval_95": None if a.interval_low_months is None
        else [a.interval_low_months, a.interval_high_months],
        "stage": a.stage, "stage_probability": a.stage_probability,
        "confidence": a.confidence, "sex_used": a.sex_used,
        "chronological_age_months": a.chronological_age_months,
        "chronological_age_source": a.chronological_age_source,
        "difference_months": a.difference_months, "sds": a.sds,
        "classification": a.classification, "at": a.created_at.isoformat(),
        "gates": [{"name": g.name, "passed": g.passed, "code": g.code, "value": g.value,
                   "threshold": g.threshold} for g in a.gates],
    }


def _delivery_detail(d: Delivery) -> dict[str, Any]:
    return {
        "kind": d.kind, "sop_instance_uid": d.sop_instance_uid, "destination": d.destination,
        "status": d.status.value, "attempts": d.attempts,
        "last_status": None if d.last_status is None else f"0x{d.last_status:04X}",
        "last_error": d.last_error, "created_at": d.created_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
    }


@app.command()
def requeue(instance_ids: list[int]) -> None:
    """Put FAILED instances back in line; a running service picks them up within a minute."""
    from service.audit.session import transaction
    from service.audit.status import advance

    runtime = _audit_runtime()
    for instance_id in instance_ids:
        with transaction(runtime.sessions) as session:
            moved = advance(session, instance_id, InstanceStatus.RECEIVED,
                            allowed_from=(InstanceStatus.FAILED,),
                            detail="re-queued by an admin")
        console.print(f"instance {instance_id}: "
                      f"{'re-queued' if moved else 'not FAILED, left alone'}")


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
            "assessments_by_reason": {
                (reason or "ASSESSED"): count for reason, count in session.execute(
                    select(AssessmentRecord.reason, func.count())
                    .group_by(AssessmentRecord.reason))
            },
            "deliveries_by_status": {
                status.value: count for status, count in session.execute(
                    select(Delivery.status, func.count()).group_by(Delivery.status))
            },
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
    for reason, count in sorted(stats["assessments_by_reason"].items()):
        table.add_row(f"assessments {reason}", str(count))
    for status, count in sorted(stats["deliveries_by_status"].items()):
        table.add_row(f"deliveries {status}", str(count))
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
