"""What happens when a PACS sends us something: admission, spooling and the audit record.

Order matters for "nothing received is lost": bytes are durably in the spool, then the audit
row is committed, then (and only then) the sender gets 0x0000, then the instance is handed off.
A crash at any point leaves either a sender that will retry, or a spooled file that start-up
adopts and queues again.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dicom_io.header import BadIdentifiers, HeaderFacts, UnreadableDataset, read_header
from dicom_io.scp import Admission, AssociationEnd, Peer, ReceivedFile
from dicom_io.sop import StoreStatus, sop_class_name
from service.audit.session import transaction
from service.audit.status import record_event
from service.audit.tables import (
    Association,
    AssociationOutcome,
    Instance,
    InstanceStatus,
    utcnow,
)
from service.handoff import HANDED_OFF, submit_or_revert
from service.settings import CallerRule
from service.spool import Spool, sha256_file

log = logging.getLogger(__name__)

_END_OUTCOMES = {
    "released": AssociationOutcome.RELEASED,
    "aborted": AssociationOutcome.ABORTED,
    "rejected": AssociationOutcome.REJECTED,
}


def admission_refusal(peer: Peer, allowed: list[CallerRule]) -> str | None:
    """Why this peer may not connect, or None. Empty allow-list: loopback peers only."""
    if not allowed:
        try:
            if ipaddress.ip_address(peer.address).is_loopback:
                return None
        except ValueError:
            pass
        return (
            f"calling AE {peer.calling_ae!r} from {peer.address} is not loopback and "
            "BONEAGE_ALLOWED_CALLERS is empty"
        )
    if any(rule.matches(peer.calling_ae, peer.address) for rule in allowed):
        return None
    return f"calling AE {peer.calling_ae!r} from {peer.address} is not in BONEAGE_ALLOWED_CALLERS"


@dataclass
class Stored:
    """The outcome of one receipt, for the response and the hand-off."""

    instance_id: int
    status: int
    queued: bool  # committed as QUEUED: submit it now


@dataclass(frozen=True)
class Receipt:
    """The facts of one C-STORE request's bytes, whatever becomes of them."""

    association_id: int | None
    received: ReceivedFile
    sha256: str | None = None
    size: int | None = None
    path: Path | None = None


def _instance_row(
    receipt: Receipt,
    *,
    status: InstanceStatus,
    code: int,
    reason: str | None = None,
    facts: HeaderFacts | None = None,
) -> Instance:
    """One audit row; UIDs come from the request (a stored dataset's match, see _mismatch)."""
    now = utcnow()
    header = {} if facts is None else {
        "study_instance_uid": facts.study_instance_uid,
        "series_instance_uid": facts.series_instance_uid,
        "accession_number": facts.accession_number,
        "patient_id": facts.patient_id,
        "modality": facts.modality,
    }
    return Instance(
        **_fitted({
            "sop_instance_uid": receipt.received.sop_instance_uid,
            "sop_class_uid": receipt.received.sop_class_uid,
            "transfer_syntax_uid": receipt.received.transfer_syntax_uid,
            "status_reason": reason,  # may quote the peer's bytes
            **header,
        }),
        association_id=receipt.association_id,
        size_bytes=receipt.size,
        sha256=receipt.sha256,
        spool_path=str(receipt.path) if receipt.path else None,
        status=status,
        response_status=code,
        received_at=now,
        status_changed_at=now,
    )


def _fitted(values: dict[str, str | None]) -> dict[str, str | None]:
    """What a peer sent, made storable on every backend: printable characters only, cut to
    the column's length (PostgreSQL enforces lengths; a hostile header is any length)."""
    columns = Instance.__table__.c
    out: dict[str, str | None] = {}
    for name, value in values.items():
        if value is not None:
            value = "".join(ch for ch in value if ch.isprintable())
            length = getattr(columns[name].type, "length", None)
            value = value[:length] if length else value
        out[name] = value
    return out


class Receiver:
    """Implements dicom_io.scp.StorageHandler for the service."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        spool: Spool,
        *,
        allowed_callers: list[CallerRule],
        min_free_disk_mb: int,
        submit: Callable[[int], None],
    ) -> None:
        self._sessions = sessions
        self._spool = spool
        self._allowed = allowed_callers
        self._min_free_mb = min_free_disk_mb
        self._submit = submit

    # -- associations --------------------------------------------------------------------

    def association_requested(self, peer: Peer) -> Admission:
        refusal = admission_refusal(peer, self._allowed)
        with transaction(self._sessions) as session:
            row = Association(
                calling_ae=peer.calling_ae[:16],
                called_ae=peer.called_ae[:16],
                peer_address=peer.address,
                peer_port=peer.port,
                outcome=AssociationOutcome.REJECTED if refusal else AssociationOutcome.ACCEPTED,
                reason=refusal,
                requested_at=utcnow(),
            )
            session.add(row)
            session.flush()
            association_id = row.id
        if refusal:
            log.warning("association %d rejected: %s", association_id, refusal)
        else:
            log.info("association %d from %s@%s", association_id, peer.calling_ae, peer.address)
        return Admission(context=association_id, rejection=refusal)

    def association_ended(self, context: int, end: AssociationEnd) -> None:
        with transaction(self._sessions) as session:
            row = session.get(Association, context)
            if row is None:
                return
            row.outcome = _END_OUTCOMES[end.outcome]
            row.reason = row.reason or end.reason
            row.refused_contexts = ", ".join(end.refused_contexts) or None
            row.ended_at = utcnow()
        log.info(
            "association %d %s%s", context, end.outcome,
            f"; refused {len(end.refused_contexts)} presentation context(s) (see audit)"
            if end.refused_contexts else "",
        )

    # -- instances -----------------------------------------------------------------------

    def instance_received(self, context: int | None, received: ReceivedFile) -> int:
        try:
            outcome = self.store(context, received)
        except SQLAlchemyError:
            # The bytes may already be spooled; start-up adopts them. The sender must retry.
            log.exception("audit DB unavailable: C-STORE answered 0xA701")
            return StoreStatus.CANNOT_RECORD
        if outcome.queued:
            try:
                submit_or_revert(self._sessions, self._submit, outcome.instance_id)
            except Exception:
                # Spooled and recorded: the periodic sweep and start-up resume will retry.
                log.exception(
                    "hand-off of instance %d failed; it stays RECEIVED", outcome.instance_id
                )
        return outcome.status

    def store(self, association_id: int | None, received: ReceivedFile) -> Stored:
        free_mb = self._spool.free_mb()
        if free_mb < self._min_free_mb:
            reason = (
                f"spool disk has {free_mb:.0f} MB free, below BONEAGE_MIN_FREE_DISK_MB="
                f"{self._min_free_mb}; the sender keeps the instance and should retry"
            )
            return self._record_unstored(
                Receipt(association_id, received), InstanceStatus.REFUSED, reason,
                StoreStatus.OUT_OF_RESOURCES,
            )

        size = received.path.stat().st_size
        sha256 = sha256_file(received.path)
        try:
            facts = read_header(received.path)
            mismatch = _mismatch(facts, received)
        except (UnreadableDataset, BadIdentifiers) as exc:
            code = (
                StoreStatus.CANNOT_PARSE
                if isinstance(exc, UnreadableDataset)
                else StoreStatus.BAD_IDENTIFIERS
            )
            kept = self._spool.keep(received.path, sha256, quarantined=True)
            return self._record_unstored(
                Receipt(association_id, received, sha256, size, kept), InstanceStatus.INVALID,
                f"{exc}; bytes kept in {kept.parent.parent.name}/{kept.parent.name}/{kept.name}",
                code,
            )
        if mismatch is not None:
            reason, code = mismatch
            kept = self._spool.keep(received.path, sha256, quarantined=True)
            return self._record_unstored(
                Receipt(association_id, received, sha256, size, kept), InstanceStatus.INVALID,
                reason, code,
            )

        path = self._spool.keep(received.path, sha256)
        for _attempt in range(5):
            try:
                return record_stored(
                    self._sessions, Receipt(association_id, received, sha256, size, path), facts,
                    queue_detail=HANDED_OFF,
                )
            except IntegrityError:
                # Another association stored the same SOP Instance UID a moment ago: look again.
                continue
        raise RuntimeError("could not allocate a version for a SOP Instance UID after 5 tries")

    def _record_unstored(
        self, receipt: Receipt, status: InstanceStatus, reason: str, code: int
    ) -> Stored:
        with transaction(self._sessions) as session:
            row = _instance_row(receipt, status=status, code=code, reason=reason)
            session.add(row)
            session.flush()
            record_event(session, row.id, status, reason)
            instance_id = row.id
        log.warning("instance %d %s (0x%04X): %s", instance_id, status.value, code, reason)
        return Stored(instance_id, code, queued=False)


def record_stored(
    sessions: sessionmaker[Session],
    receipt: Receipt,
    facts: HeaderFacts,
    *,
    note: str | None = None,
    queue_detail: str | None = None,
) -> Stored:
    """Add the audit row for spooled bytes: a new version, or a DUPLICATE of identical bytes.

    With `queue_detail`, a new version is committed already QUEUED (one durable commit per
    receipt instead of two); the caller then submits it, and start-up resume covers a crash
    in between.
    """
    with transaction(sessions) as session:
        earlier = session.execute(
            select(Instance.id, Instance.version, Instance.sha256)
            .where(
                Instance.sop_instance_uid == facts.sop_instance_uid,
                Instance.version.is_not(None),
            )
            .order_by(Instance.version)
        ).all()
        same = next((row for row in earlier if row.sha256 == receipt.sha256), None)
        row = _instance_row(
            receipt, status=InstanceStatus.RECEIVED, code=StoreStatus.SUCCESS, facts=facts
        )
        if same is not None:
            row.status = InstanceStatus.DUPLICATE
            row.duplicate_of_id = same.id
            row.status_reason = (
                f"same content as instance {same.id} (version {same.version}); not reprocessed"
            )
        else:
            row.version = (earlier[-1].version + 1) if earlier else 1
            if earlier:
                row.status_reason = (
                    f"new version {row.version}: content differs from instance {earlier[-1].id}"
                )
        session.add(row)
        session.flush()
        record_event(session, row.id, row.status, note or row.status_reason)
        if queue_detail and row.status is InstanceStatus.RECEIVED:
            row.status = InstanceStatus.QUEUED
            record_event(session, row.id, InstanceStatus.QUEUED, queue_detail)
        instance_id, status, version = row.id, row.status, row.version
    log.info(
        "instance %d stored%s: %s, %.1f MB, sha256 %s%s",
        instance_id, " (duplicate)" if status is InstanceStatus.DUPLICATE else "",
        sop_class_name(facts.sop_class_uid),
        (receipt.size or 0) / 1e6, (receipt.sha256 or "")[:12],
        f", version {version}" if version and version > 1 else "",
    )
    return Stored(instance_id, StoreStatus.SUCCESS, queued=status is InstanceStatus.QUEUED)


def _mismatch(facts: HeaderFacts, received: ReceivedFile) -> tuple[str, int] | None:
    """The dataset must be what the C-STORE request said it is."""
    if facts.sop_class_uid != received.sop_class_uid:
        return (
            f"dataset SOP Class {sop_class_name(facts.sop_class_uid)} differs from the "
            f"request's {sop_class_name(received.sop_class_uid)}",
            StoreStatus.SOP_CLASS_MISMATCH,
        )
    if facts.sop_instance_uid != received.sop_instance_uid:
        return (
            "dataset SOP Instance UID differs from the request's Affected SOP Instance UID",
            StoreStatus.BAD_IDENTIFIERS,
        )
    return None


def adopt_orphans(sessions: sessionmaker[Session], spool: Spool) -> list[int]:
    """Record spooled files that have no audit row: a crash hit between rename and commit.

    Their senders never got a success and will likely resend; the resend then shows up as a
    DUPLICATE of the adopted row, so nothing is processed twice.
    """
    with sessions() as session:
        known = set(
            session.scalars(select(Instance.spool_path).where(Instance.spool_path.is_not(None)))
        )
    adopted: list[int] = []
    for path in spool.stored_files():
        if str(path) in known:
            continue
        try:
            facts = read_header(path)
        except (UnreadableDataset, BadIdentifiers):
            log.warning("unreadable orphan %s left in the spool", path.name)
            continue
        received = ReceivedFile(
            path, facts.sop_class_uid, facts.sop_instance_uid, facts.transfer_syntax_uid or ""
        )
        stored = record_stored(
            sessions, Receipt(None, received, path.stem, path.stat().st_size, path), facts,
            note="adopted from the spool at start-up (crash before the audit commit)",
        )
        adopted.append(stored.instance_id)
    if adopted:
        log.warning("adopted %d spooled instance(s) that had no audit row", len(adopted))
    return adopted
