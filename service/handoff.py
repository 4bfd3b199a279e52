"""Handing received instances to a worker, and resuming them after a crash.

The service does not know how work is carried (embedded threads or a Celery broker): it is
given a `submit(instance_id)` callable by the entry point that wires the process together.
Only ids travel; workers read the spooled file themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.audit.session import transaction
from service.audit.status import advance
from service.audit.tables import UNFINISHED, Instance, InstanceStatus, utcnow

log = logging.getLogger(__name__)

Submit = Callable[[int], None]


class Dispatcher(Protocol):
    """How work is carried to workers: the embedded runner or a Celery broker."""

    def submit(self, instance_id: int) -> None: ...

    def waiting(self) -> int | None:
        """Messages waiting in the queue, or None when that cannot be known right now."""
        ...

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
    include_processing: bool,
    detail: str = "re-queued at start-up",
) -> list[int]:
    """Queue again what was received but not finished when the process stopped.

    With the embedded runner nobody else can be processing, so every PROCESSING row is stale
    (`include_processing`); with Celery, workers may be busy with them, and only expired
    leases are taken back (service.leases.reclaim_expired).
    """
    statuses = [InstanceStatus.RECEIVED, InstanceStatus.QUEUED]
    if include_processing:
        statuses.append(InstanceStatus.PROCESSING)
    with sessions() as session:
        query = select(Instance.id).where(Instance.status.in_(statuses)).order_by(Instance.id)
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


def ring_again(sessions: sessionmaker[Session], submit: Submit, *, older_than: timedelta,
               waiting_in_queue: int | None) -> int:
    """Send the task message again for instances QUEUED longer than `older_than` while the
    queue holds no message: the broker lost them (a Redis flush or a restart without
    persistence). A duplicate message is harmless: the claim is conditional."""
    if waiting_in_queue is None or waiting_in_queue > 0:
        return 0
    cutoff = utcnow() - older_than
    stale = (Instance.status == InstanceStatus.QUEUED) & (Instance.status_changed_at <= cutoff)
    with sessions() as session:
        ids = list(session.scalars(select(Instance.id).where(stale).order_by(Instance.id)))
    rung = 0
    for instance_id in ids:
        with transaction(sessions) as session:
            moved = advance(session, instance_id, InstanceStatus.QUEUED,
                            allowed_from=(InstanceStatus.QUEUED,), only_if=stale,
                            detail="queued again: the broker held no message for it")
        if not moved:
            continue
        try:
            submit_or_revert(sessions, submit, instance_id)
            rung += 1
        except Exception:
            log.warning("re-queue of instance %d failed; the sweep retries", instance_id,
                        exc_info=True)
    if rung:
        log.warning("%d instance(s) were QUEUED with no message in the broker: queued again",
                    rung)
    return rung


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
