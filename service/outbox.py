"""The outbox and delivery: outputs are written to disk and recorded before any sending, then
sent to every destination with exponential backoff until they arrive or the retry window
(24 hours by default) closes, when they are dead-lettered with an audit row and an error log.

The rows are the queue: a restart finds PENDING deliveries and carries on, and a crash between
sending and recording can only cause a re-send of the same derived UIDs, which PACS treats as
a replacement, never as a second result.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_io.nodes import Destination
from dicom_io.scu import send_files
from service.audit.session import transaction
from service.audit.tables import Delivery, DeliveryStatus, utcnow

log = logging.getLogger(__name__)


def write_outputs(outbox: Path, outputs: dict[str, Dataset]) -> dict[str, tuple[str, Path]]:
    """Each output to `outbox/<SOP Instance UID>.dcm`, atomically (temp file, fsync, rename).
    Returns {kind: (uid, path)}."""
    outbox.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, dataset in outputs.items():
        uid = str(dataset.SOPInstanceUID)
        path = outbox / f"{uid}.dcm"
        # Two workers may write the same derived UID (a lease taken over): own temp names.
        temporary = outbox / f".{uid}.{os.getpid()}.{threading.get_ident()}.partial"
        dataset.save_as(temporary, enforce_file_format=True)
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        temporary.replace(path)
        written[kind] = (uid, path)
    return written


@dataclass(frozen=True)
class DeliveryPolicy:
    """What the deliverer needs to know, and no more: who we are, how it retries, when it
    gives up, and the TLS context of outbound associations (None: plain TCP)."""

    calling_ae: str
    retry_initial_s: float = 5.0
    retry_max_s: float = 600.0
    give_up_hours: float = 24.0
    poll_s: float = 1.0
    tls: ssl.SSLContext | None = None


def queue_deliveries(session: Session, instance_id: int,
                     written: dict[str, tuple[str, Path]],
                     destinations: Sequence[Destination]) -> int:
    """One PENDING row per output and destination, unless that pair is already known."""
    added = 0
    for kind, (uid, path) in written.items():
        for node in destinations:
            destination = str(node)
            exists = session.scalars(select(Delivery.id).where(
                Delivery.sop_instance_uid == uid, Delivery.destination == destination)).first()
            if exists is not None:
                continue
            now = utcnow()
            session.add(Delivery(instance_id=instance_id, kind=kind, sop_instance_uid=uid,
                                 path=str(path), destination=destination,
                                 status=DeliveryStatus.PENDING, attempts=0, created_at=now,
                                 next_attempt_at=now))
            added += 1
    return added


def backoff(attempts: int, initial_s: float, max_s: float) -> timedelta:
    return timedelta(seconds=min(initial_s * 2 ** max(attempts - 1, 0), max_s))


class Deliverer:
    """Sends what is due. `wake()` after queueing makes the next round start at once."""

    def __init__(self, sessions: sessionmaker[Session], policy: DeliveryPolicy) -> None:
        self._sessions = sessions
        self._policy = policy
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=self._loop, name="delivery", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:
                log.exception("delivery round failed; will retry")
            self._wake.wait(self._policy.poll_s)
            self._wake.clear()

    def run_due(self, now: datetime | None = None) -> int:
        """One round: every due PENDING delivery, one association per destination."""
        now = now or utcnow()
        with self._sessions() as session:
            due = list(session.scalars(
                select(Delivery).where(Delivery.status == DeliveryStatus.PENDING,
                                       Delivery.next_attempt_at <= now)
                .order_by(Delivery.id).limit(200)))
            session.expunge_all()
        by_destination: dict[str, list[Delivery]] = defaultdict(list)
        for row in due:
            by_destination[row.destination].append(row)
        delivered = 0
        for destination, rows in by_destination.items():
            delivered += self._send(destination, rows, now)
        return delivered

    def _send(self, destination: str, rows: list[Delivery], now: datetime) -> int:
        """Send and record; `now` is the round's clock (the retry window is judged by it)."""
        policy = self._policy
        results = send_files([Path(row.path) for row in rows], Destination.parse(destination),
                             calling_ae=policy.calling_ae, tls=policy.tls)
        by_path = {str(result.path): result for result in results}
        delivered = 0
        with transaction(self._sessions) as session:
            for row in rows:
                result = by_path[row.path]
                current = session.get(Delivery, row.id)
                if current is None or current.status is not DeliveryStatus.PENDING:
                    continue
                current.attempts += 1
                current.last_attempt_at = now
                current.last_status = result.status
                current.last_error = result.error
                if result.ok:
                    current.status = DeliveryStatus.DELIVERED
                    current.delivered_at = now
                    delivered += 1
                    log.info("delivered %s of instance %d to %s", current.kind,
                             current.instance_id, destination)
                elif now - (current.retried_at or current.created_at) >= timedelta(
                        hours=policy.give_up_hours):
                    current.status = DeliveryStatus.DEAD
                    log.error("dead-letter: %s of instance %d to %s after %d attempts: %s",
                              current.kind, current.instance_id, destination, current.attempts,
                              result.error)
                else:
                    current.next_attempt_at = now + backoff(
                        current.attempts, policy.retry_initial_s, policy.retry_max_s)
                    log.warning("delivery of %s (instance %d) to %s failed, attempt %d: %s",
                                current.kind, current.instance_id, destination,
                                current.attempts, result.error)
        return delivered
