"""Running the pipeline on one received instance and recording the outcome.

`process_instance(sessions, instance_id, assessor, claimant)` is what the embedded runner and
the Celery task call. It is idempotent: an instance someone else claimed or finished is left
alone, and an instance that already has an assessment by this model version gets that stored
outcome back instead of a second computation. The claim is a lease (service.leases): every
write at the end is conditional on still holding it, so a worker that lost its lease (it was
presumed dead and another took over) discards its result instead of recording a second one.
A fault of ours (an exception inside the pipeline) marks the instance FAILED with the reason;
the file stays in the spool for a re-run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_io.content import Outcome
from dicom_io.nodes import Destination
from service.audit.session import transaction
from service.audit.status import advance
from service.audit.tables import AssessmentRecord, GateRecord, Instance, InstanceStatus
from service.leases import Claimant
from service.memory import release_freed_memory
from service.outbox import queue_deliveries, write_outputs
from service.reporting import build_outputs

if TYPE_CHECKING:  # the networks load in the processes that assess (service.runtime)
    from service.pipeline import Assessment, Assessor

log = logging.getLogger(__name__)

AssessorProvider = Callable[[], "Assessor"]


@dataclass(frozen=True)
class OutputPolicy:
    """Where results go: written to `outbox`, queued for every destination."""

    outbox: Path
    destinations: tuple[Destination, ...]
    report_rejections: bool = True
    wake: Callable[[], None] = field(default=lambda: None)  # nudge the deliverer


class LeaseLost(Exception):
    """Our lease expired and another worker took the instance: this result is not recorded."""


def process_instance(sessions: sessionmaker[Session], instance_id: int,
                     assessor: AssessorProvider, claimant: Claimant,
                     outputs: OutputPolicy | None = None) -> InstanceStatus:
    [status] = process_batch(sessions, [instance_id], assessor, claimant, outputs)
    return status


def waiting_companions(sessions: sessionmaker[Session], instance_id: int,
                       limit: int) -> list[int]:
    """Up to `limit` other QUEUED instances, oldest first: what a GPU worker takes along
    with the one its message named. Their own messages find them finished and do nothing."""
    if limit <= 0:
        return []
    with sessions() as session:
        return list(session.scalars(
            select(Instance.id).where(Instance.status == InstanceStatus.QUEUED,
                                      Instance.id != instance_id)
            .order_by(Instance.id).limit(limit)))


def process_batch(sessions: sessionmaker[Session], instance_ids: list[int],
                  assessor: AssessorProvider, claimant: Claimant,
                  outputs: OutputPolicy | None = None) -> list[InstanceStatus]:
    """Claim each instance (conditionally: one another worker holds is left alone), assess
    the claimed ones with one forward pass of the network, and record each on its own
    (a lease lost on one discards that one's result only). The status of each is returned."""
    note = f" in a batch of {len(instance_ids)}" if len(instance_ids) > 1 else ""
    statuses: dict[int, InstanceStatus] = {}
    claimed: list[tuple[int, str | None]] = []
    for instance_id in instance_ids:
        with transaction(sessions) as session:
            took = advance(session, instance_id, InstanceStatus.PROCESSING,
                           allowed_from=(InstanceStatus.RECEIVED, InstanceStatus.QUEUED),
                           detail=f"picked up by {claimant.name}{note}",
                           lease=claimant.lease())
        with sessions() as session:
            row = session.get(Instance, instance_id)
            if row is None:
                raise LookupError(f"instance {instance_id} does not exist")
            if took:
                claimed.append((instance_id, row.spool_path))
            else:
                statuses[instance_id] = row.status
    try:
        statuses |= _assess_and_record(sessions, claimed, assessor, claimant, outputs)
    finally:
        release_freed_memory()
    return [statuses[instance_id] for instance_id in instance_ids]


def _assess_and_record(sessions: sessionmaker[Session], claimed: list[tuple[int, str | None]],
                       assessor: AssessorProvider, claimant: Claimant,
                       outputs: OutputPolicy | None) -> dict[int, InstanceStatus]:
    def ending(instance_id: int, step: Callable[[], InstanceStatus]) -> InstanceStatus:
        return _guarded(sessions, claimant, instance_id, step)

    def failed(instance_id: int, what: str, exc: Exception) -> InstanceStatus:
        return ending(instance_id, lambda: _fail(sessions, instance_id, claimant, what, exc))

    try:
        current = assessor()
        version = current.model.version
    except Exception as exc:
        return {i: failed(i, "pipeline", exc) for i, _ in claimed}
    statuses: dict[int, InstanceStatus] = {}
    todo: list[tuple[int, Path]] = []
    for instance_id, spool_path in claimed:
        stored = _stored(sessions, instance_id, version)
        if stored is not None:
            statuses[instance_id] = ending(instance_id, lambda i=instance_id, s=stored: _finish(
                sessions, i, claimant, s.status, s.reason,
                f"already assessed by model {version}: stored outcome kept"))
        elif spool_path is None:
            statuses[instance_id] = failed(instance_id, "pipeline",
                                           FileNotFoundError("the instance has no spooled file"))
        else:
            todo.append((instance_id, Path(spool_path)))
    try:
        assessments = current.assess_paths([path for _, path in todo]) if todo else []
    except Exception as exc:
        return statuses | {i: failed(i, "pipeline", exc) for i, _ in todo}
    for (instance_id, _), assessment in zip(todo, assessments, strict=True):
        statuses[instance_id] = ending(instance_id, lambda i=instance_id, a=assessment:
                                       _output_and_record(sessions, i, claimant, a, outputs))
    return statuses


def _guarded(sessions: sessionmaker[Session], claimant: Claimant, instance_id: int,
             step: Callable[[], InstanceStatus]) -> InstanceStatus:
    """A step that ends an instance's PROCESSING, counted for the worker; if the lease went
    to another worker meanwhile, this result is discarded and the current status returned."""
    try:
        final = step()
    except LeaseLost:
        log.warning("instance %d: lease lost to another worker; this result is discarded",
                    instance_id)
        with sessions() as session:
            return session.get(Instance, instance_id).status  # type: ignore[union-attr]
    claimant.finished_one()
    return final


def _output_and_record(sessions: sessionmaker[Session], instance_id: int, claimant: Claimant,
                       assessment: Assessment, outputs: OutputPolicy | None) -> InstanceStatus:
    try:
        written = _write_outputs(assessment, outputs)
    except Exception as exc:
        return _fail(sessions, instance_id, claimant, "report building", exc)
    final = _record(sessions, instance_id, claimant, assessment, written, outputs)
    if written and outputs is not None:
        outputs.wake()
    return final


def _leave_processing(session: Session, instance_id: int, claimant: Claimant,
                      to: InstanceStatus, *, detail: str, reason: str | None) -> None:
    """The one way out of PROCESSING for the claimant: only while it holds the lease."""
    if not advance(session, instance_id, to, allowed_from=(InstanceStatus.PROCESSING,),
                   held_by=claimant.name, detail=detail, reason=reason):
        raise LeaseLost(instance_id)


def _fail(sessions: sessionmaker[Session], instance_id: int, claimant: Claimant, step: str,
          exc: Exception) -> InstanceStatus:
    """Our fault, not the input's: FAILED with the reason, the spooled file kept."""
    log.exception("instance %d: %s failed", instance_id, step)
    with transaction(sessions) as session:
        _leave_processing(session, instance_id, claimant, InstanceStatus.FAILED,
                          detail=f"{step} error; the file is kept for a re-run",
                          reason=f"{type(exc).__name__}: {exc}")
    return InstanceStatus.FAILED


def _write_outputs(assessment: Assessment, outputs: OutputPolicy | None
                   ) -> dict[str, tuple[str, Path]]:
    if outputs is None or not outputs.destinations:
        return {}
    datasets = build_outputs(assessment, report_rejections=outputs.report_rejections)
    return write_outputs(outputs.outbox, datasets)


def _stored(sessions: sessionmaker[Session], instance_id: int, version: str
            ) -> AssessmentRecord | None:
    with sessions() as session:
        return session.scalars(select(AssessmentRecord).where(
            AssessmentRecord.instance_id == instance_id,
            AssessmentRecord.model_version == version)).first()


def _finish(sessions: sessionmaker[Session], instance_id: int, claimant: Claimant,
            outcome: Outcome, reason: str | None, detail: str) -> InstanceStatus:
    final = InstanceStatus(outcome.value)
    with transaction(sessions) as session:
        _leave_processing(session, instance_id, claimant, final, detail=detail, reason=reason)
    return final


def assessment_record(instance_id: int, assessment: Assessment) -> AssessmentRecord:
    """The audit row of an assessment, field by field: a clinical number added to the
    assessment shows up here as a missing column, not inside the audit write."""
    p, c, model = assessment.prediction, assessment.clinical, assessment.model
    low, high = (p.interval_95 if p is not None and p.interval_95 else (None, None))
    return AssessmentRecord(
        instance_id=instance_id,
        model_name=model.name, model_version=model.version,
        weights_sha256=model.weights_sha256, synthetic=model.synthetic,
        status=assessment.status, reason=assessment.reason,
        reason_text=assessment.reason_text,
        flags=",".join(assessment.flags) or None, sex_used=assessment.sex_used,
        bone_age_months=None if p is None else p.bone_age_months,
        interval_low_months=low, interval_high_months=high,
        stage=None if p is None else p.stage,
        stage_probability=None if p is None else p.stage_probability,
        confidence=None if p is None else p.confidence,
        chronological_age_months=None if c is None else c.chronological_age_months,
        chronological_age_source=None if c is None else c.chronological_age_source,
        difference_months=None if c is None else c.difference_months,
        sd_months=None if c is None else c.sd_months,
        sds=None if c is None else c.sds,
        classification=None if c is None else c.classification,
        gates=[GateRecord(position=index, name=g.name, passed=g.passed, code=g.code,
                          value=None if g.value is None else str(g.value), threshold=g.threshold)
               for index, g in enumerate(assessment.gates)],
    )


def _record(sessions: sessionmaker[Session], instance_id: int, claimant: Claimant,
            assessment: Assessment, written: dict[str, tuple[str, Path]],
            outputs: OutputPolicy | None) -> InstanceStatus:
    p = assessment.prediction
    final = InstanceStatus(assessment.status.value)
    if final is InstanceStatus.ASSESSED:
        detail = f"bone age {p.bone_age_months:.1f} months" if p else "assessed"
        if assessment.flags:
            detail += f"; flags {', '.join(assessment.flags)}"
    else:
        detail = f"rejected: {assessment.reason_text}"
    with transaction(sessions) as session:
        # First, in the same transaction: a lost lease writes neither assessment nor deliveries.
        _leave_processing(session, instance_id, claimant, final, detail=detail,
                          reason=assessment.reason)
        session.add(assessment_record(instance_id, assessment))
        if written and outputs is not None:
            queue_deliveries(session, instance_id, written, outputs.destinations)
    log.info("instance %d %s%s", instance_id, final.value.lower(),
             f" ({assessment.reason})" if assessment.reason else
             f" bone age {p.bone_age_months:.1f} months" if p else "")
    return final
