"""Leases: a worker's claim on an instance lasts while its heartbeat renews it.

Each process that claims instances (`boneage serve`'s embedded runner, each Celery worker
process) is a `Claimant` with a unique name. Its heartbeat thread marks it alive in the
`workers` table and pushes the expiry of every lease it holds. When a worker dies (SIGKILL,
OOM, power), its heartbeat stops, its leases expire within `lease_s`, and the reconciler
(`reclaim_expired`, run by `serve`'s sweep) queues those instances again. The DB is the truth:
Redis only rings the doorbell, and claims are conditional updates, so a message delivered
twice, or after the work is done, changes nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.audit.session import transaction
from service.audit.status import Lease, advance
from service.audit.tables import Instance, InstanceStatus, Worker, utcnow
from service.handoff import Submit, submit_or_revert

log = logging.getLogger(__name__)

WORKER_LOST = "WORKER_LOST"


class Claimant:
    """One process's identity as a lease holder, and its heartbeat."""

    def __init__(self, sessions: sessionmaker[Session], kind: str, *, lease_s: float) -> None:
        self.sessions = sessions
        self.kind = kind
        self.lease_s = lease_s
        host = socket.gethostname()
        # The pid alone could be reused after a restart; the token never is.
        self.name = f"{kind}@{host}:{os.getpid()}:{secrets.token_hex(3)}"
        self._host = host
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def lease(self) -> Lease:
        return Lease(self.name, utcnow() + timedelta(seconds=self.lease_s))

    def start(self, model_version: str | None = None) -> Claimant:
        with transaction(self.sessions) as session:
            session.merge(Worker(name=self.name, kind=self.kind, hostname=self._host,
                                 pid=os.getpid(), model_version=model_version,
                                 started_at=utcnow(), last_seen_at=utcnow(), processed=0))
        self._thread = threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """A clean stop says so, and gives its leases back at once for another worker."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            with transaction(self.sessions) as session:
                session.execute(update(Worker).where(Worker.name == self.name)
                                .values(stopped_at=utcnow(), last_seen_at=utcnow()))
                session.execute(update(Instance).where(
                    Instance.lease_holder == self.name,
                    Instance.status == InstanceStatus.PROCESSING,
                ).values(lease_expires_at=utcnow()))
        except Exception:
            log.warning("could not record the worker's stop", exc_info=True)

    def finished_one(self) -> None:
        with transaction(self.sessions) as session:
            session.execute(update(Worker).where(Worker.name == self.name)
                            .values(processed=Worker.processed + 1))

    def beat(self) -> int:
        """Renew: the worker is seen, and its leases last another `lease_s`. Returns the
        number of leases renewed."""
        now = utcnow()
        with transaction(self.sessions) as session:
            session.execute(update(Worker).where(Worker.name == self.name)
                            .values(last_seen_at=now))
            renewed = session.execute(update(Instance).where(
                Instance.lease_holder == self.name,
                Instance.status == InstanceStatus.PROCESSING,
            ).values(lease_expires_at=now + timedelta(seconds=self.lease_s)))
        return int(renewed.rowcount)  # type: ignore[attr-defined]

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.beat()
            except Exception:
                # The DB may be briefly away; the lease has two more beats of slack.
                log.warning("heartbeat failed; will retry", exc_info=True)


def expired_condition():  # type: ignore[no-untyped-def]
    """A PROCESSING lease that nobody renews any more (no lease at all counts as expired:
    rows from before leases existed)."""
    return or_(Instance.lease_expires_at.is_(None), Instance.lease_expires_at <= utcnow())


def reclaim_expired(sessions: sessionmaker[Session], submit: Submit, *,
                    max_claims: int) -> list[int]:
    """Queue again each instance whose lease expired; after `max_claims` lost workers, mark
    it FAILED (WORKER_LOST) instead: an image that kills every worker must not go round
    forever. Returns the ids queued again."""
    with sessions() as session:
        rows = session.execute(select(Instance.id, Instance.lease_holder, Instance.claims)
                               .where(Instance.status == InstanceStatus.PROCESSING,
                                      expired_condition())
                               .order_by(Instance.id)).all()
    requeued = []
    for instance_id, holder, claims in rows:
        give_up = claims >= max_claims
        with transaction(sessions) as session:
            moved = advance(
                session, instance_id,
                InstanceStatus.FAILED if give_up else InstanceStatus.QUEUED,
                allowed_from=(InstanceStatus.PROCESSING,), only_if=expired_condition(),
                detail=(f"worker {holder} stopped renewing its lease"
                        + (f"; gave up after {claims} claims: the file is kept for a re-run"
                            if give_up else "; queued again")),
                reason=WORKER_LOST if give_up else None,
            )
        if not moved:
            continue
        if give_up:
            log.error("instance %d: %d workers lost while processing it; marked FAILED",
                      instance_id, claims)
            continue
        log.warning("instance %d: lease of %s expired; queued again", instance_id, holder)
        try:
            submit_or_revert(sessions, submit, instance_id)
            requeued.append(instance_id)
        except Exception:
            log.warning("re-queue of instance %d failed; the sweep retries", instance_id,
                        exc_info=True)
    return requeued
