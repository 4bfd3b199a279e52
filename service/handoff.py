"""Handing received instances to a worker, and resuming them after a crash.

The service does not know how work is carried (embedded threads or a Celery broker): it is
given a `submit(instance_id)` callable by the entry point that wires the process together.
Only ids travel; workers read the spooled file themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from service.audit.session import transaction
from service.audit.status import advance
from service.audit.tables import UNFINISHED, Instance, InstanceStatus, utcnow

log = logging.getLogger(__name__)

Submit = Callable[[int], None]

HANDED_OFF = "handed off after receipt"


def queue_instance(
    sessions: sessionmaker[Session],
    submit: Submit,
    instance_id: int,
    *,
    detail: str,
    allowed_from: tuple[InstanceStatus, ...] = (InstanceStatus.RECEIVED,),
) -> bool:
    """Mark QUEUED, then submit. Marking first means a fast worker can never be overwritten."""
    with transaction(sessions) as session:
        moved = advance(
            session, instance_id, InstanceStatus.QUEUED, allowed_from=allowed_from, detail=detail
        )
    if not moved:
        return False
    submit_or_revert(sessions, submit, instance_id)
    return True


def submit_or_revert(sessions: sessionmaker[Session], submit: Submit, instance_id: int) -> None:
    """Submit an instance already marked QUEUED; if that fails, put it back to RECEIVED so the
    sweep retries it (and say why in its history), then re-raise."""
    try:
        submit(instance_id)
    except Exception as exc:
        with transaction(sessions) as session:
            advance(
                session, instance_id, InstanceStatus.RECEIVED,
                allowed_from=(InstanceStatus.QUEUED,),
                detail=f"hand-off failed, will retry: {type(exc).__name__}: {exc}",
            )
        raise


def resume_unfinished(
    sessions: sessionmaker[Session],
    submit: Submit,
    *,
    include_processing_older_than: timedelta | None,
    detail: str = "re-queued at start-up",
) -> list[int]:
    """Queue again what was received but not finished when the process stopped.

    With the embedded runner nobody else can be processing, so PROCESSING rows are stale and
    `include_processing_older_than` is zero; with Celery, only long-silent ones are.
    """
    conditions = [Instance.status.in_((InstanceStatus.RECEIVED, InstanceStatus.QUEUED))]
    if include_processing_older_than is not None:
        cutoff = utcnow() - include_processing_older_than
        conditions.append(
            (Instance.status == InstanceStatus.PROCESSING) & (Instance.status_changed_at <= cutoff)
        )
    with sessions() as session:
        query = select(Instance.id).where(or_(*conditions)).order_by(Instance.id)
        ids = list(session.scalars(query))
    resumed = []
    for instance_id in ids:
        try:
            queued = queue_instance(
                sessions, submit, instance_id, detail=detail, allowed_from=UNFINISHED
            )
            if queued:
                resumed.append(instance_id)
        except Exception:
            log.exception("could not re-queue instance %d", instance_id)
    if resumed:
        log.info("%s: %d instance(s)", detail, len(resumed))
    return resumed


def sweep_stuck(sessions: sessionmaker[Session], submit: Submit, *, older_than: timedelta) -> int:
    """Re-try hand-offs that failed (for example while the broker was down)."""
    cutoff = utcnow() - older_than
    with sessions() as session:
        ids = list(session.scalars(
            select(Instance.id).where(
                Instance.status == InstanceStatus.RECEIVED, Instance.status_changed_at <= cutoff
            )
        ))
    count = 0
    for instance_id in ids:
        try:
            count += queue_instance(sessions, submit, instance_id, detail="re-queued by sweep")
        except Exception:
            log.warning("hand-off of instance %d failed again; will retry", instance_id,
                        exc_info=True)
    return count
