"""Running the pipeline on one received instance and recording the outcome.

`process_instance(sessions, instance_id, assessor)` is what the embedded runner and the Celery
task call. It is idempotent: an instance someone else claimed or finished is left alone, and
an instance that already has an assessment by this model version gets that stored outcome
back instead of a second computation. A fault of ours (an exception inside the pipeline) marks
the instance FAILED with the reason; the file stays in the spool for a re-run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.audit.session import transaction
from service.audit.status import advance
from service.audit.tables import AssessmentRecord, GateRecord, Instance, InstanceStatus
from service.outbox import queue_deliveries, write_outputs
from service.pipeline import ASSESSED, Assessment, Assessor
from service.reporting import build_outputs

log = logging.getLogger(__name__)

AssessorProvider = Callable[[], Assessor]
_OUTCOME = {ASSESSED: InstanceStatus.ASSESSED, "rejected": InstanceStatus.REJECTED}


@dataclass(frozen=True)
class OutputPolicy:
    """Where results go: written to `outbox`, queued for every destination."""

    outbox: Path
    destinations: tuple[str, ...]
    report_rejections: bool = True
    wake: Callable[[], None] = field(default=lambda: None)  # nudge the deliverer


def process_instance(sessions: sessionmaker[Session], instance_id: int,
                     assessor: AssessorProvider,
                     outputs: OutputPolicy | None = None) -> InstanceStatus:
    with transaction(sessions) as session:
        claimed = advance(
            session, instance_id, InstanceStatus.PROCESSING,
            allowed_from=(InstanceStatus.RECEIVED, InstanceStatus.QUEUED),
            detail="picked up by a worker",
        )
    with sessions() as session:
        row = session.get(Instance, instance_id)
        if row is None:
            raise LookupError(f"instance {instance_id} does not exist")
        if not claimed:
            return row.status
        spool_path = row.spool_path
    try:
        current = assessor()
        version = current.predictor.card.version
        stored = _stored(sessions, instance_id, version)
        if stored is not None:
            return _finish(sessions, instance_id, stored.status, stored.reason,
                           f"already assessed by model {version}: stored outcome kept")
        if spool_path is None:
            raise FileNotFoundError("the instance has no spooled file")
        assessment = current.assess_path(Path(spool_path))
    except Exception as exc:
        return _fail(sessions, instance_id, "pipeline", exc)
    try:
        written = _write_outputs(assessment, current, outputs)
    except Exception as exc:
        return _fail(sessions, instance_id, "report building", exc)
    final = _record(sessions, instance_id, assessment, current, written, outputs)
    if written and outputs is not None:
        outputs.wake()
    return final


def _fail(sessions: sessionmaker[Session], instance_id: int, step: str,
          exc: Exception) -> InstanceStatus:
    """Our fault, not the input's: FAILED with the reason, the spooled file kept."""
    log.exception("instance %d: %s failed", instance_id, step)
    with transaction(sessions) as session:
        advance(session, instance_id, InstanceStatus.FAILED,
                allowed_from=(InstanceStatus.PROCESSING,),
                detail=f"{step} error; the file is kept for a re-run",
                reason=f"{type(exc).__name__}: {exc}")
    return InstanceStatus.FAILED


def _write_outputs(assessment: Assessment, assessor: Assessor, outputs: OutputPolicy | None
                   ) -> dict[str, tuple[str, Path]]:
    if outputs is None or not outputs.destinations:
        return {}
    datasets = build_outputs(assessment, assessor.predictor.card,
                             report_rejections=outputs.report_rejections)
    return write_outputs(outputs.outbox, datasets)


def _stored(sessions: sessionmaker[Session], instance_id: int, version: str
            ) -> AssessmentRecord | None:
    with sessions() as session:
        return session.scalars(select(AssessmentRecord).where(
            AssessmentRecord.instance_id == instance_id,
            AssessmentRecord.model_version == version)).first()


def _finish(sessions: sessionmaker[Session], instance_id: int, status: str,
            reason: str | None, detail: str) -> InstanceStatus:
    final = _OUTCOME[status]
    with transaction(sessions) as session:
        advance(session, instance_id, final, allowed_from=(InstanceStatus.PROCESSING,),
                detail=detail, reason=reason)
    return final


def _record(sessions: sessionmaker[Session], instance_id: int, assessment: Assessment,
            assessor: Assessor, written: dict[str, tuple[str, Path]],
            outputs: OutputPolicy | None) -> InstanceStatus:
    card = assessor.predictor.card
    p = assessment.prediction
    numbers = assessment.numbers()
    interval = numbers.pop("interval_95") or (None, None)
    del numbers["normal_range_months"]
    record = AssessmentRecord(
        instance_id=instance_id, model_name=card.name, model_version=card.version,
        weights_sha256=card.weights_sha256, synthetic=card.synthetic,
        status=assessment.status, reason=assessment.reason, reason_text=assessment.reason_text,
        flags=",".join(assessment.flags) or None, sex_used=assessment.sex_used,
        interval_low_months=interval[0], interval_high_months=interval[1], **numbers,
        gates=[GateRecord(position=index, name=g.name, passed=g.passed, code=g.code,
                          value=None if g.value is None else str(g.value), threshold=g.threshold)
               for index, g in enumerate(assessment.gates)],
    )
    final = _OUTCOME[assessment.status]
    if final is InstanceStatus.ASSESSED:
        detail = f"bone age {p.bone_age_months:.1f} months" if p else "assessed"
        if assessment.flags:
            detail += f"; flags {', '.join(assessment.flags)}"
    else:
        detail = f"rejected: {assessment.reason_text}"
    with transaction(sessions) as session:
        session.add(record)
        if written and outputs is not None:
            queue_deliveries(session, instance_id, written, list(outputs.destinations))
        advance(session, instance_id, final, allowed_from=(InstanceStatus.PROCESSING,),
                detail=detail, reason=assessment.reason)
    log.info("instance %d %s%s", instance_id, final.value.lower(),
             f" ({assessment.reason})" if assessment.reason else
             f" bone age {p.bone_age_months:.1f} months" if p else "")
    return final
