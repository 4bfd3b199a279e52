"""What an on-call engineer asks first: is work flowing? Read from the audit DB (plus the
broker's queue depth, which the caller measures): instances by status, the oldest one still
waiting, live workers with the leases they hold, and deliveries failing or dead-lettered.
Rendered by `boneage status` as a table or JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.audit.tables import (
    UNFINISHED,
    Delivery,
    DeliveryStatus,
    Instance,
    InstanceStatus,
    Worker,
    utcnow,
)


@dataclass(frozen=True)
class WorkerState:
    name: str
    kind: str
    model_version: str | None
    last_seen_s: float  # seconds since its last heartbeat
    alive: bool  # heard from within one lease period (three missed beats) and not stopped
    processed: int
    leases: list[dict[str, Any]]  # instance id and seconds left, for each one it holds


@dataclass(frozen=True)
class StatusReport:
    at: str
    queue: str  # "celery (redis)" or "embedded"
    queue_waiting: int | None  # messages in the broker (None: not known)
    instances: dict[str, int]
    unfinished: int
    oldest_unfinished: dict[str, Any] | None
    workers: list[WorkerState]
    deliveries: dict[str, int]
    failing_destinations: list[dict[str, Any]]  # pending with at least one failed attempt

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _age_s(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 1)


def _workers(session: Session, now: datetime, lease_s: float) -> list[WorkerState]:
    leases: dict[str, list[dict[str, Any]]] = {}
    held = session.execute(select(Instance.id, Instance.lease_holder, Instance.lease_expires_at)
                           .where(Instance.status == InstanceStatus.PROCESSING))
    for instance_id, holder, expires in held:
        leases.setdefault(holder or "(none)", []).append(
            {"instance_id": instance_id, "expires_in_s": _age_s(now, expires)})
    recent = now - timedelta(hours=24)
    rows = session.scalars(select(Worker).where(Worker.last_seen_at >= recent)
                           .order_by(Worker.started_at)).all()
    return [WorkerState(
        name=w.name, kind=w.kind, model_version=w.model_version,
        last_seen_s=_age_s(w.last_seen_at, now) or 0.0,
        alive=w.stopped_at is None and (now - w.last_seen_at).total_seconds() < lease_s,
        processed=w.processed, leases=leases.get(w.name, []),
    ) for w in rows]


def status_report(session: Session, *, queue: str, queue_waiting: int | None,
                  lease_s: float) -> StatusReport:
    now = utcnow()
    counts = dict(session.execute(select(Instance.status, func.count())
                                  .group_by(Instance.status)).all())
    oldest = session.execute(
        select(Instance.id, Instance.status, Instance.received_at, Instance.status_changed_at)
        .where(Instance.status.in_(UNFINISHED)).order_by(Instance.received_at).limit(1)
    ).first()
    deliveries = dict(session.execute(select(Delivery.status, func.count())
                                      .group_by(Delivery.status)).all())
    failing = session.execute(
        select(Delivery.destination, func.count(), func.max(Delivery.attempts),
               func.min(Delivery.next_attempt_at))
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.attempts > 0)
        .group_by(Delivery.destination)).all()
    return StatusReport(
        at=now.isoformat(timespec="seconds"), queue=queue, queue_waiting=queue_waiting,
        instances={s.value: counts.get(s, 0) for s in InstanceStatus},
        unfinished=sum(counts.get(s, 0) for s in UNFINISHED),
        oldest_unfinished=None if oldest is None else {
            "id": oldest.id, "status": oldest.status.value,
            "waiting_s": _age_s(oldest.received_at, now),
            "in_status_s": _age_s(oldest.status_changed_at, now)},
        workers=_workers(session, now, lease_s),
        deliveries={s.value: deliveries.get(s, 0) for s in DeliveryStatus},
        failing_destinations=[{"destination": d, "pending": n, "max_attempts": a,
                               "next_attempt_in_s": _age_s(now, nxt)}
                              for d, n, a, nxt in failing],
    )
