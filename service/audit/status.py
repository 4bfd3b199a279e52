"""Moving an instance from one status to the next, with its history.

Every change goes through `advance`: a conditional UPDATE (only from the statuses given) plus
an event row, in the caller's transaction. The condition is what makes hand-off and
processing safe when the embedded runner, Celery workers and the start-up resume race.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from service.audit.tables import Instance, InstanceEvent, InstanceStatus, utcnow


def record_event(
    session: Session, instance_id: int, status: InstanceStatus, detail: str | None
) -> None:
    session.add(InstanceEvent(instance_id=instance_id, status=status, detail=detail, at=utcnow()))


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a PROCESSING instance: who, and until when unless renewed."""

    holder: str
    expires_at: datetime


def advance(
    session: Session,
    instance_id: int,
    to: InstanceStatus,
    *,
    allowed_from: Iterable[InstanceStatus],
    detail: str | None = None,
    reason: str | None = None,
    held_by: str | None = None,
    lease: Lease | None = None,
    only_if: ColumnElement[bool] | None = None,
) -> bool:
    """Set `to` if the instance is in one of `allowed_from` (and, with `held_by`, still leased
    by that worker; with `only_if`, that holds too); False if someone else moved it.

    Entering PROCESSING takes `lease` and counts a claim; every other move clears the lease.
    """
    now = utcnow()
    conditions = [Instance.id == instance_id, Instance.status.in_(list(allowed_from))]
    if held_by is not None:
        conditions.append(Instance.lease_holder == held_by)
    if only_if is not None:
        conditions.append(only_if)
    values: dict[str, object] = {"status": to, "status_changed_at": now, "status_reason": reason,
                                 "lease_holder": None, "lease_expires_at": None}
    if lease is not None:
        values |= {"lease_holder": lease.holder, "lease_expires_at": lease.expires_at,
                   "claims": Instance.claims + 1}
    result = session.execute(
        update(Instance).where(*conditions).values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_event(session, instance_id, to, detail)
    return True
