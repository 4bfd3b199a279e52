"""Audit database tables: what arrived, from whom, and what happened to it.

The audit DB is the one place where patient identifiers may live (never the logs). Rows are
appended or moved forward in status; nothing is deleted by the service. Schema changes go
through Alembic migrations in `alembic/versions/`; keep the two in step.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from dicom_io.content import Outcome

# Stable constraint names so Alembic migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite hands them back naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to an audit timestamp")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AssociationOutcome(enum.StrEnum):
    ACCEPTED = "ACCEPTED"  # established; still open
    RELEASED = "RELEASED"
    ABORTED = "ABORTED"
    REJECTED = "REJECTED"


class InstanceStatus(enum.StrEnum):
    """Where one received C-STORE request stands.

    RECEIVED -> QUEUED -> PROCESSING -> ASSESSED | REJECTED | FAILED. DUPLICATE, REFUSED and
    INVALID are final at receipt. ASSESSED and REJECTED share their values with
    `dicom_io.content.Outcome`.
    """

    RECEIVED = "RECEIVED"  # spooled and committed; not yet handed off
    QUEUED = "QUEUED"  # handed to the embedded runner or the Celery broker
    PROCESSING = "PROCESSING"
    ASSESSED = "ASSESSED"  # bone age estimated (flags may ask for review)
    REJECTED = "REJECTED"  # a gate refused it; status_reason has the first failing code
    FAILED = "FAILED"  # our fault (an exception in the pipeline); kept for a re-run
    DUPLICATE = "DUPLICATE"  # same SOP Instance UID and same bytes as an earlier version
    REFUSED = "REFUSED"  # not stored (for example: spool disk below the minimum)
    INVALID = "INVALID"  # could not be parsed; bytes kept in quarantine


UNFINISHED = (InstanceStatus.RECEIVED, InstanceStatus.QUEUED, InstanceStatus.PROCESSING)


class Association(Base):
    __tablename__ = "associations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calling_ae: Mapped[str] = mapped_column(String(16))
    called_ae: Mapped[str] = mapped_column(String(16))
    peer_address: Mapped[str] = mapped_column(String(64))
    peer_port: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[AssociationOutcome] = mapped_column(
        Enum(AssociationOutcome, native_enum=False, length=16)
    )
    reason: Mapped[str | None] = mapped_column(Text)
    # Abstract syntaxes the peer proposed that we refused (for example CT Image Storage).
    refused_contexts: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    instances: Mapped[list[Instance]] = relationship(back_populates="association")


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (
        # One row per stored content version of a SOP Instance UID; refused, invalid and
        # duplicate receipts have no version of their own.
        Index(
            "uq_instances_sop_version",
            "sop_instance_uid",
            "version",
            unique=True,
            sqlite_where=text("version IS NOT NULL"),
            postgresql_where=text("version IS NOT NULL"),
        ),
        Index("ix_instances_status", "status"),
        Index("ix_instances_study", "study_instance_uid"),
        Index("ix_instances_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    association_id: Mapped[int | None] = mapped_column(ForeignKey("associations.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    study_instance_uid: Mapped[str | None] = mapped_column(String(64))
    series_instance_uid: Mapped[str | None] = mapped_column(String(64))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    modality: Mapped[str | None] = mapped_column(String(16))
    transfer_syntax_uid: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    spool_path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[InstanceStatus] = mapped_column(
        Enum(InstanceStatus, native_enum=False, length=16)
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    # DIMSE status we answered the C-STORE with (0 = success).
    response_status: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # While PROCESSING: which worker holds it and until when (renewed by its heartbeat). An
    # expired lease means the worker died; the reconciler queues the instance again.
    lease_holder: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    association: Mapped[Association | None] = relationship(back_populates="instances")
    events: Mapped[list[InstanceEvent]] = relationship(
        back_populates="instance", order_by="InstanceEvent.id"
    )


class InstanceEvent(Base):
    """The history of an instance: one row per status it entered, with when and why."""

    __tablename__ = "instance_events"
    __table_args__ = (Index("ix_instance_events_instance", "instance_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    status: Mapped[InstanceStatus] = mapped_column(
        Enum(InstanceStatus, native_enum=False, length=16)
    )
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    instance: Mapped[Instance] = relationship(back_populates="events")


class AssessmentRecord(Base):
    """One run of the pipeline on one instance with one model version: the outcome, the
    prediction and the clinical numbers. Unique per (instance, model version): re-running
    with the same model returns this row instead of computing again."""

    __tablename__ = "assessments"
    __table_args__ = (
        Index("uq_assessments_instance_model", "instance_id", "model_version", unique=True),
        Index("ix_assessments_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    synthetic: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[Outcome] = mapped_column(Enum(Outcome, native_enum=False, length=16))
    reason: Mapped[str | None] = mapped_column(String(32))
    reason_text: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[str | None] = mapped_column(Text)  # comma-separated flag codes
    bone_age_months: Mapped[float | None] = mapped_column(Float)
    interval_low_months: Mapped[float | None] = mapped_column(Float)
    interval_high_months: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(32))
    stage_probability: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[str | None] = mapped_column(String(8))
    sex_used: Mapped[str | None] = mapped_column(String(4))
    chronological_age_months: Mapped[float | None] = mapped_column(Float)
    chronological_age_source: Mapped[str | None] = mapped_column(Text)
    difference_months: Mapped[float | None] = mapped_column(Float)
    sd_months: Mapped[float | None] = mapped_column(Float)
    sds: Mapped[float | None] = mapped_column(Float)
    classification: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    gates: Mapped[list[GateRecord]] = relationship(
        back_populates="assessment", order_by="GateRecord.position"
    )


class GateRecord(Base):
    """Every gate that ran for an assessment, passed or not, with what it measured."""

    __tablename__ = "gate_results"
    __table_args__ = (Index("ix_gate_results_assessment", "assessment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool] = mapped_column(Boolean)
    code: Mapped[str | None] = mapped_column(String(32))
    value: Mapped[str | None] = mapped_column(Text)
    threshold: Mapped[str | None] = mapped_column(Text)

    assessment: Mapped[AssessmentRecord] = relationship(back_populates="gates")


class Worker(Base):
    """A process that claims instances (an embedded runner in `serve`, or a Celery worker
    process), with its heartbeat: what `boneage status` lists as live workers."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # the lease holder name
    kind: Mapped[str] = mapped_column(String(16))  # embedded | celery
    hostname: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"  # written to the outbox; (re)trying with backoff
    DELIVERED = "DELIVERED"  # the destination answered success
    DEAD = "DEAD"  # gave up after the retry window: dead-letter, an admin must act


class Delivery(Base):
    """One output (SR or report image) to one destination: attempts, last status, times.
    Unique per (SOP Instance UID, destination): the same derived output is never queued twice
    for the same PACS."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("uq_deliveries_sop_destination", "sop_instance_uid", "destination", unique=True),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    kind: Mapped[str] = mapped_column(String(8))  # sr | sc
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    destination: Mapped[str] = mapped_column(String(128))  # AE@host:port
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=16)
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer)  # DIMSE status of the last try
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When an admin retried a dead letter: the give-up window counts from here, not created_at.
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReviewVerdict(enum.StrEnum):
    ACCEPTED = "ACCEPTED"  # the reader agrees with the AI's bone age
    MODIFIED = "MODIFIED"  # the reader gives another bone age


class Review(Base):
    """A radiologist's verdict on one assessment: accept, or their own bone age. Appended, never
    updated: the AI's values stay in `assessments` untouched, and a second review is a second
    row (the newest one counts for agreement and export)."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_instance", "instance_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"))
    verdict: Mapped[ReviewVerdict] = mapped_column(
        Enum(ReviewVerdict, native_enum=False, length=16)
    )
    reader: Mapped[str] = mapped_column(String(64))  # who read it, as the caller names them
    recorded_by: Mapped[str] = mapped_column(String(64))  # the API or CLI identity that wrote it
    reader_bone_age_months: Mapped[float] = mapped_column(Float)
    ai_bone_age_months: Mapped[float] = mapped_column(Float)  # copied at review time
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiRequest(Base):
    """Every request the admin API answered: who, what, when, and with what status."""

    __tablename__ = "api_requests"
    __table_args__ = (Index("ix_api_requests_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    who: Mapped[str] = mapped_column(String(64))
    auth: Mapped[str] = mapped_column(String(16))  # token | loopback (no token configured)
    client: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)  # without the query string
    status_code: Mapped[int] = mapped_column(Integer)
    action: Mapped[str | None] = mapped_column(Text)  # write actions: what was done
