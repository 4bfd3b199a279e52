"""What an admin may change, from the CLI or the API: the same three writes either way.

Each is a conditional update in the caller's transaction that says whether it did anything,
so a double click or two admins at once cannot move a row twice.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.audit.status import advance
from service.audit.tables import Delivery, DeliveryStatus, InstanceStatus, utcnow


def requeue_failed(session: Session, instance_id: int, who: str) -> bool:
    """Put a FAILED instance back in line (`serve` picks RECEIVED rows up within a
    reconcile period); False when it was not FAILED."""
    return advance(session, instance_id, InstanceStatus.RECEIVED,
                   allowed_from=(InstanceStatus.FAILED,), detail=f"re-queued by {who}")


def retry_delivery(session: Session, delivery_id: int) -> bool:
    """Give a dead-lettered delivery a new retry window, due now; the running deliverer
    sends it on its next poll. False when it was not DEAD."""
    now = utcnow()
    result = session.execute(
        update(Delivery).where(Delivery.id == delivery_id,
                               Delivery.status == DeliveryStatus.DEAD)
        .values(status=DeliveryStatus.PENDING, retried_at=now, next_attempt_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]
