"""The admin's questions of the audit DB, answered as plain dicts.

One set of queries serves `boneage audit`, the admin HTTP API and the dashboard, so the CLI,
the JSON and the page can never disagree about what a study's status is or why it was
rejected. Every function takes an open session and returns JSON-ready values.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from service.audit.tables import (
    AssessmentRecord,
    Association,
    Delivery,
    DeliveryStatus,
    Instance,
    InstanceEvent,
    InstanceStatus,
    Review,
    Worker,
    utcnow,
)

AGREEMENT_WITHIN_MONTHS = 12.0  # the share of reader bone ages within a year of the AI's


@dataclass(frozen=True)
class InstanceFilter:
    """What `audit list` and `GET /instances` narrow by; every field is optional."""

    status: InstanceStatus | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    accession_number: str | None = None
    patient_id: str | None = None
    study_instance_uid: str | None = None
    model_version: str | None = None
    reason: str | None = None  # a gate's reason code (REJECTED), or a FAILED cause
    limit: int = 50

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.status is not None:
            query = query.where(Instance.status == self.status)
        if self.since is not None:
            query = query.where(Instance.received_at >= self.since)
        if self.until is not None:
            query = query.where(Instance.received_at < self.until)
        for column, value in ((Instance.accession_number, self.accession_number),
                              (Instance.patient_id, self.patient_id),
                              (Instance.study_instance_uid, self.study_instance_uid)):
            if value:
                query = query.where(column == value)
        if self.model_version:
            query = query.where(Instance.id.in_(
                select(AssessmentRecord.instance_id)
                .where(AssessmentRecord.model_version == self.model_version)))
        if self.reason:
            query = query.where(or_(
                Instance.status_reason == self.reason,
                Instance.status_reason.like(f"{self.reason}:%"),
                Instance.id.in_(select(AssessmentRecord.instance_id)
                                .where(AssessmentRecord.reason == self.reason))))
        return query


def instance_summary(row: Instance, latest: AssessmentRecord | None = None) -> dict[str, Any]:
    """One line of `audit list`: what arrived, from whom, where it stands, and the result."""
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
        "accession_number": row.accession_number,
        "patient_id": row.patient_id,
        "study_instance_uid": row.study_instance_uid,
        "model_version": None if latest is None else latest.model_version,
        "bone_age_months": None if latest is None else latest.bone_age_months,
        "interval_95": None if latest is None or latest.interval_low_months is None
        else [latest.interval_low_months, latest.interval_high_months],
        "confidence": None if latest is None else latest.confidence,
    }


def _latest_assessments(session: Session, ids: list[int]) -> dict[int, AssessmentRecord]:
    latest: dict[int, AssessmentRecord] = {}
    if ids:
        for record in session.scalars(select(AssessmentRecord)
                                      .where(AssessmentRecord.instance_id.in_(ids))
                                      .order_by(AssessmentRecord.id)):
            latest[record.instance_id] = record
    return latest


def list_instances(session: Session, where: InstanceFilter) -> list[dict[str, Any]]:
    """Newest first, narrowed by `where`."""
    query = where.apply(select(Instance).options(selectinload(Instance.association)))
    rows = session.scalars(query.order_by(Instance.id.desc()).limit(where.limit)).all()
    latest = _latest_assessments(session, [row.id for row in rows])
    return [instance_summary(row, latest.get(row.id)) for row in rows]


def instance_detail(session: Session, instance_id: int) -> dict[str, Any] | None:
    """One instance's whole story: association -> history -> gates and prediction ->
    deliveries -> reviews."""
    row = session.get(Instance, instance_id, options=[selectinload(Instance.events),
                                                      selectinload(Instance.association)])
    if row is None:
        return None
    assessments = session.scalars(
        select(AssessmentRecord).where(AssessmentRecord.instance_id == instance_id)
        .options(selectinload(AssessmentRecord.gates)).order_by(AssessmentRecord.id)).all()
    return instance_summary(row, assessments[-1] if assessments else None) | {
        "sop_instance_uid": row.sop_instance_uid,
        "series_instance_uid": row.series_instance_uid,
        "transfer_syntax_uid": row.transfer_syntax_uid,
        "sha256": row.sha256,
        "spool_path": row.spool_path,
        "duplicate_of": row.duplicate_of_id,
        "association": None if row.association is None else {
            "id": row.association.id,
            "calling_ae": row.association.calling_ae,
            "called_ae": row.association.called_ae,
            "peer": f"{row.association.peer_address}:{row.association.peer_port}",
            "outcome": row.association.outcome.value,
            "requested_at": row.association.requested_at.isoformat(),
        },
        "events": [{"at": e.at.isoformat(), "status": e.status.value, "detail": e.detail}
                   for e in row.events],
        "assessments": [assessment_detail(a) for a in assessments],
        "deliveries": [delivery_detail(d) for d in session.scalars(
            select(Delivery).where(Delivery.instance_id == instance_id).order_by(Delivery.id))],
        "reviews": [review_detail(r) for r in session.scalars(
            select(Review).where(Review.instance_id == instance_id).order_by(Review.id))],
    }


def assessment_detail(a: AssessmentRecord) -> dict[str, Any]:
    return {
        "id": a.id, "model": f"{a.model_name} {a.model_version}",
        "model_version": a.model_version, "weights_sha256": a.weights_sha256,
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


def delivery_detail(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id, "kind": d.kind, "sop_instance_uid": d.sop_instance_uid,
        "destination": d.destination, "status": d.status.value, "attempts": d.attempts,
        "last_status": None if d.last_status is None else f"0x{d.last_status:04X}",
        "last_error": d.last_error, "created_at": d.created_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
    }


def review_detail(r: Review) -> dict[str, Any]:
    return {
        "id": r.id, "assessment_id": r.assessment_id, "verdict": r.verdict.value,
        "reader": r.reader, "recorded_by": r.recorded_by,
        "reader_bone_age_months": r.reader_bone_age_months,
        "ai_bone_age_months": r.ai_bone_age_months, "comment": r.comment,
        "at": r.created_at.isoformat(),
    }


def parse_when(text: str) -> datetime:
    """An ISO 8601 date or time from an admin; a bare date or time is local time. Raises
    ValueError."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.astimezone()


def live_workers(session: Session, lease_s: float) -> int:
    """Worker processes not stopped and heard from within one lease period."""
    return int(session.scalar(select(func.count()).select_from(Worker).where(
        Worker.stopped_at.is_(None),
        Worker.last_seen_at >= utcnow() - timedelta(seconds=lease_s))) or 0)


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Instance.status, func.count()).group_by(Instance.status))
    return {status.value: count for status, count in rows}


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p90/p99 of seconds, with the count; None where there is nothing to measure."""
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None}
    ordered = sorted(values)
    if len(ordered) == 1:
        return {"count": 1, "p50": ordered[0], "p90": ordered[0], "p99": ordered[0]}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"count": len(ordered), "p50": round(cuts[49], 3), "p90": round(cuts[89], 3),
            "p99": round(cuts[98], 3)}


def delivered_latencies(session: Session,
                        limit: int | None = None) -> list[tuple[int, str, float]]:
    """(instance id, destination, seconds from receipt until the last of its outputs reached
    that destination) for every pair whose outputs were all delivered, oldest first; with
    `limit`, the newest few. Per destination, so one PACS that is down hides nothing of the
    others."""
    query = (select(Instance.id, Delivery.destination, Instance.received_at,
                    func.max(Delivery.delivered_at), func.count(Delivery.id),
                    func.count(Delivery.delivered_at))
             .join(Delivery, Delivery.instance_id == Instance.id)
             .group_by(Instance.id, Delivery.destination, Instance.received_at)
             .order_by(Instance.id.desc(), Delivery.destination))
    found = [(instance_id, destination, (last - received).total_seconds())
             for instance_id, destination, received, last, total, delivered
             in session.execute(query) if last is not None and total == delivered]
    return list(reversed(found[:limit] if limit else found))


STAGES = {  # stage name: (from status, to statuses) in an instance's history
    "queue": ((InstanceStatus.RECEIVED,), (InstanceStatus.PROCESSING,)),
    "processing": ((InstanceStatus.PROCESSING,),
                   (InstanceStatus.ASSESSED, InstanceStatus.REJECTED, InstanceStatus.FAILED)),
}


def stage_latencies(session: Session) -> dict[str, list[float]]:
    """Seconds spent per stage, from each instance's history (first entry of the stage to
    the first entry of what ends it); plus `delivery`, receipt to the last output delivered
    (per destination)."""
    firsts: dict[int, dict[InstanceStatus, datetime]] = defaultdict(dict)
    for instance_id, status, at in session.execute(
            select(InstanceEvent.instance_id, InstanceEvent.status, InstanceEvent.at)
            .order_by(InstanceEvent.id)):
        firsts[instance_id].setdefault(status, at)
    seconds: dict[str, list[float]] = {name: [] for name in STAGES}
    for events in firsts.values():
        for name, (start, ends) in STAGES.items():
            began = next((events[s] for s in start if s in events), None)
            ended = min((events[s] for s in ends if s in events), default=None)
            if began is not None and ended is not None and ended >= began:
                seconds[name].append((ended - began).total_seconds())
    seconds["delivery"] = [value for _, _, value in delivered_latencies(session)]
    return seconds


def failing_destinations(session: Session) -> list[dict[str, Any]]:
    """Destinations with deliveries dead-lettered or pending after a failed attempt."""
    rows = session.execute(
        select(Delivery.destination, Delivery.status, func.count(), func.max(Delivery.last_error))
        .where(or_(Delivery.status == DeliveryStatus.DEAD,
                   (Delivery.status == DeliveryStatus.PENDING) & (Delivery.attempts > 0)))
        .group_by(Delivery.destination, Delivery.status)).all()
    failing: dict[str, dict[str, Any]] = {}
    for destination, status, count, error in rows:
        entry = failing.setdefault(destination, {"destination": destination, "pending": 0,
                                                 "dead": 0, "last_error": error})
        entry["dead" if status is DeliveryStatus.DEAD else "pending"] += count
    return sorted(failing.values(), key=lambda e: e["destination"])


def latest_reviews(session: Session) -> list[Review]:
    """The newest review of each reviewed instance."""
    newest = select(func.max(Review.id)).group_by(Review.instance_id)
    return list(session.scalars(select(Review).where(Review.id.in_(newest))
                                .order_by(Review.id)))


def agreement(session: Session) -> dict[str, Any]:
    """AI against readers over the newest review of each instance: how many were reviewed,
    the share accepted as they were, the mean absolute difference, and the share within
    a year."""
    reviews = latest_reviews(session)
    differences = [abs(r.reader_bone_age_months - r.ai_bone_age_months) for r in reviews]
    if not reviews:
        return {"reviewed": 0, "accepted_share": None, "mae_months": None,
                "within_12_months_share": None}
    return {
        "reviewed": len(reviews),
        "accepted_share": round(sum(r.verdict.value == "ACCEPTED" for r in reviews)
                                / len(reviews), 4),
        "mae_months": round(statistics.fmean(differences), 2),
        "within_12_months_share": round(sum(d <= AGREEMENT_WITHIN_MONTHS for d in differences)
                                        / len(differences), 4),
    }


def rejection_reasons(session: Session) -> dict[str, int]:
    """REJECTED and FAILED instances by their reason code (the first failing gate)."""
    rows = session.execute(select(Instance.status_reason).where(
        Instance.status.in_((InstanceStatus.REJECTED, InstanceStatus.FAILED))))
    return dict(Counter((reason or "UNKNOWN").split(":")[0] for (reason,) in rows))


def audit_stats(session: Session) -> dict[str, Any]:
    """What `audit stats`, `GET /stats` and the dashboard report."""
    latencies = stage_latencies(session)
    return {
        "instances_by_status": count_by_status(session),
        "associations_by_outcome": {
            outcome.value: count for outcome, count in session.execute(
                select(Association.outcome, func.count()).group_by(Association.outcome))},
        "bytes_received": int(session.scalar(select(func.sum(Instance.size_bytes))) or 0),
        "rejection_reasons": rejection_reasons(session),
        "assessments_by_reason": {
            (reason or "ASSESSED"): count for reason, count in session.execute(
                select(AssessmentRecord.reason, func.count())
                .group_by(AssessmentRecord.reason))},
        "deliveries_by_status": {
            status.value: count for status, count in session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status))},
        "latency_seconds": {
            "received_to_delivered": percentiles(latencies["delivery"]),
            "queue": percentiles(latencies["queue"]),
            "processing": percentiles(latencies["processing"]),
        },
        "failing_destinations": failing_destinations(session),
        "agreement": agreement(session),
    }
