"""Moving an instance from one status to the next, with its history.

Every change goes through `advance`: a conditional UPDATE (only from the statuses given) plus
an event row, in the caller's transaction. The condition is what makes hand-off and
processing safe when the embedded runner, Celery workers and the start-up resume race.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.audit.tables import Instance, InstanceEvent, InstanceStatus, utcnow


def record_event(
    session: Session, instance_id: int, status: InstanceStatus, detail: str | None
) -> None:
    session.add(InstanceEvent(instance_id=instance_id, status=status, detail=detail, at=utcnow()))


def advance(
    session: Session,
    instance_id: int,
    to: InstanceStatus,
    *,
    allowed_from: Iterable[InstanceStatus],
    detail: str | None = None,
    reason: str | None = None,
) -> bool:
    """Set `to` if the instance is in one of `allowed_from`; False if someone else moved it."""
    now = utcnow()
    result = session.execute(
        update(Instance)
        .where(Instance.id == instance_id, Instance.status.in_(list(allowed_from)))
        .values(status=to, status_changed_at=now, status_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_event(session, instance_id, to, detail)
    return True
