"""`boneage audit` and `boneage requeue`: what arrived and what became of it, read from the
audit DB and rendered as tables or JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from service.audit.tables import (
    AssessmentRecord,
    Association,
    Delivery,
    Instance,
    InstanceStatus,
)
from service.cli_common import console, err, runtime_or_exit

audit_app = typer.Typer(help="What arrived and what happened to it.", no_args_is_help=True)


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Instance.status, func.count()).group_by(Instance.status))
    return {status.value: count for status, count in rows}


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
    runtime = runtime_or_exit()
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
    runtime = runtime_or_exit()
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
        "synthetic": a.synthetic, "status": a.status.value, "reason": a.reason,
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


def requeue(instance_ids: list[int]) -> None:
    """Put FAILED instances back in line; a running service picks them up within a minute."""
    from service.audit.session import transaction
    from service.audit.status import advance

    runtime = runtime_or_exit()
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
    runtime = runtime_or_exit()
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
