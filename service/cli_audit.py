"""`boneage audit` and `boneage requeue`: what arrived and what became of it, read from the
audit DB (service.audit.queries, the same answers the admin API gives) and rendered as
tables, JSON or CSV; plus the admin's writes: requeue, retry a dead letter, record a review,
export reviewed cases for training."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from service.audit import queries
from service.audit.export import (
    HISTORY_COLUMNS,
    LIST_COLUMNS,
    STATS_COLUMNS,
    history_rows,
    stats_rows,
    to_csv,
)
from service.audit.session import transaction
from service.audit.tables import InstanceStatus
from service.cli_common import console, err, runtime_or_exit

audit_app = typer.Typer(help="What arrived and what happened to it.", no_args_is_help=True)

Format = Annotated[str, typer.Option("--format", help="table, json or csv.")]
AsJson = Annotated[bool, typer.Option("--json", help="JSON (same as --format json).")]

def _format(fmt: str, as_json: bool) -> str:
    fmt = "json" if as_json else fmt
    if fmt not in {"table", "json", "csv"}:
        err.print(f"[bold red]--format {fmt}:[/] choose table, json or csv")
        raise typer.Exit(2)
    return fmt


def write_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    sys.stdout.write(to_csv(rows, columns))


def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return queries.parse_when(text)
    except ValueError:
        err.print(f"[bold red]--{name} {text!r}:[/] use ISO 8601, e.g. 2026-12-01 or "
                  "2026-12-01T08:00+01:00")
        raise typer.Exit(2) from None


@audit_app.command("list")
def audit_list(
    status: Annotated[InstanceStatus | None, typer.Option(help="Only this status.")] = None,
    since: Annotated[str | None, typer.Option(help="Received at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Received before (ISO 8601).")] = None,
    accession: Annotated[str | None, typer.Option(help="Accession number.")] = None,
    patient_id: Annotated[str | None, typer.Option(help="Patient ID.")] = None,
    study: Annotated[str | None, typer.Option(help="Study Instance UID.")] = None,
    model_version: Annotated[str | None, typer.Option(help="Assessed by this version.")] = None,
    reason: Annotated[str | None, typer.Option(
        help="Reason code: a gate's (NOT_A_HAND, LOW_CONTRAST, ...) or a failure's.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N rows.")] = 50,
    fmt: Format = "table",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """Received instances, newest first, narrowed by the options."""
    fmt = _format(fmt, as_json)
    where = queries.InstanceFilter(
        status=status, since=_when(since, "since"), until=_when(until, "until"),
        accession_number=accession, patient_id=patient_id, study_instance_uid=study,
        model_version=model_version, reason=reason, limit=limit)
    runtime = runtime_or_exit()
    with runtime.sessions() as session:
        summaries = queries.list_instances(session, where)
    if fmt == "json":
        for summary in summaries:
            print(json.dumps(summary))
    elif fmt == "csv":
        write_csv(summaries, LIST_COLUMNS)
    else:
        _list_table(summaries)


def _list_table(summaries: list[dict[str, Any]]) -> None:
    table = Table("id", "received", "status", "from", "accession", "bone age", "MB", "reason")
    for s in summaries:
        table.add_row(
            str(s["id"]), s["received_at"][:19], s["status"], s["calling_ae"] or "-",
            s["accession_number"] or "-",
            "-" if s["bone_age_months"] is None else f"{s['bone_age_months']:.1f} mo",
            f"{s['size_bytes'] / 1e6:.1f}" if s["size_bytes"] else "-",
            (s["status_reason"] or "")[:60],
        )
    console.print(table)


@audit_app.command("show")
def audit_show(
    instance_id: int,
    fmt: Format = "table",
    as_json: AsJson = False,
) -> None:
    """One instance's whole story: association, status history, gates and prediction,
    deliveries, reviews (--format csv: the history as rows)."""
    fmt = _format(fmt, as_json)
    runtime = runtime_or_exit()
    with runtime.sessions() as session:
        detail = queries.instance_detail(session, instance_id)
    if detail is None:
        err.print(f"no instance {instance_id}")
        raise typer.Exit(1)
    if fmt == "json":
        print(json.dumps(detail, indent=2))
    elif fmt == "csv":
        write_csv(history_rows(detail), HISTORY_COLUMNS)
    else:
        _show_tables(detail)


def _show_tables(detail: dict[str, Any]) -> None:
    for key, value in detail.items():
        if key not in {"events", "assessments", "deliveries", "reviews"}:
            console.print(f"[bold]{key}[/]: {value}", highlight=False)
    table = Table("at", "what", "status", "detail", title="history")
    for row in history_rows(detail):
        table.add_row(row["at"][:23], row["what"], row["status"], row["detail"] or "")
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


def requeue(instance_ids: list[int]) -> None:
    """Put FAILED instances back in line; a running service picks them up within a minute."""
    from service.admin_actions import requeue_failed

    runtime = runtime_or_exit()
    for instance_id in instance_ids:
        with transaction(runtime.sessions) as session:
            moved = requeue_failed(session, instance_id, "an admin (CLI)")
        console.print(f"instance {instance_id}: "
                      f"{'re-queued' if moved else 'not FAILED, left alone'}")


@audit_app.command("retry-delivery")
def retry_delivery(delivery_ids: list[int]) -> None:
    """Give dead-lettered deliveries (`audit show` lists their ids) a new retry window."""
    from service.admin_actions import retry_delivery as retry

    runtime = runtime_or_exit()
    for delivery_id in delivery_ids:
        with transaction(runtime.sessions) as session:
            moved = retry(session, delivery_id)
        console.print(f"delivery {delivery_id}: "
                      f"{'due again now' if moved else 'not dead-lettered, left alone'}")


@audit_app.command("review")
def review(
    instance_id: int,
    reader: Annotated[str, typer.Option(help="Who read the study.")],
    accept: Annotated[bool, typer.Option(help="The reader accepts the AI's bone age.")] = False,
    bone_age: Annotated[float | None, typer.Option(
        help="The reader's bone age in months (instead of --accept).")] = None,
    comment: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record a radiologist's verdict on an assessment; the AI's values are kept as they are."""
    from service.reviews import ReviewError, ReviewRequest, record_review

    if accept == (bone_age is not None):
        err.print("[bold red]give exactly one of --accept and --bone-age[/]")
        raise typer.Exit(2)
    runtime = runtime_or_exit()
    try:
        with transaction(runtime.sessions) as session:
            saved = queries.review_detail(record_review(
                session, instance_id, ReviewRequest(reader, bone_age, comment), "cli"))
    except (ReviewError, LookupError) as exc:
        err.print(f"[bold red]not recorded:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    print(json.dumps(saved))


@audit_app.command("export-labels")
def export_labels(
    out: Annotated[Path, typer.Option(help="Folder to write labels.csv and images/ into.")],
) -> None:
    """Reviewed cases in the training layout (`id,boneage,male,path` with the reader's bone
    age), for `boneage train --data OUT/images --labels OUT/labels.csv --init MODEL`. The
    images keep their patient identifiers: keep the folder where the audit DB is kept."""
    from service.reviews import export_labels as export

    runtime = runtime_or_exit()
    with runtime.sessions() as session:
        result = export(session, out)
    print(json.dumps({"out": str(out), "written": result.written, "skipped": result.skipped}))


@audit_app.command("stats")
def audit_stats(fmt: Format = "table", as_json: AsJson = False) -> None:
    """Counts by status, rejection reasons, latency percentiles (receipt -> delivered),
    failing destinations, and agreement with radiologists."""
    fmt = _format(fmt, as_json)
    runtime = runtime_or_exit()
    with runtime.sessions() as session:
        stats = queries.audit_stats(session)
    if fmt == "json":
        print(json.dumps(stats, indent=2))
        return
    rows = stats_rows(stats)
    if fmt == "csv":
        write_csv(rows, STATS_COLUMNS)
        return
    table = Table("group", "what", "value")
    for row in rows:
        table.add_row(row["group"], row["key"], str(row["value"]))
    console.print(table)
