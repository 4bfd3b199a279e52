"""The radiologist's verdict comes back: accept the AI's bone age or give their own.

A review is appended beside the assessment it judges and never touches it, so the audit DB
keeps what the AI said and what the reader said. Reviewed cases can leave as a training set
(`boneage audit export-labels`), the layout `boneage train --data DIR --labels` reads, so a
site can fine-tune on its own verified cases with `--init`.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_io.content import Outcome
from service.audit.queries import latest_reviews
from service.audit.tables import AssessmentRecord, Instance, Review, ReviewVerdict, utcnow

MAX_BONE_AGE_MONTHS = 240.0  # the network's range; a reader's value beyond it is a typo


class ReviewError(ValueError):
    """The review cannot be recorded; the message says why, for the API's 4xx and the CLI."""


@dataclass(frozen=True)
class ReviewRequest:
    reader: str  # who read the study (free text, as the site names its radiologists)
    bone_age_months: float | None = None  # None: the reader accepts the AI's value
    comment: str | None = None


def record_review(session: Session, instance_id: int, request: ReviewRequest,
                  recorded_by: str) -> Review:
    """Append a review of the instance's newest ASSESSED assessment, in the caller's
    transaction."""
    reader = request.reader.strip()
    if not reader or len(reader) > 64:
        raise ReviewError("reader must be 1 to 64 characters")
    if request.bone_age_months is not None and not (
            0.0 <= request.bone_age_months <= MAX_BONE_AGE_MONTHS):
        raise ReviewError(f"bone_age_months must lie in 0..{MAX_BONE_AGE_MONTHS:g}")
    if session.get(Instance, instance_id) is None:
        raise LookupError(f"no instance {instance_id}")
    assessment = session.scalars(
        select(AssessmentRecord).where(AssessmentRecord.instance_id == instance_id,
                                       AssessmentRecord.status == Outcome.ASSESSED)
        .order_by(AssessmentRecord.id.desc()).limit(1)).first()
    if assessment is None or assessment.bone_age_months is None:
        raise ReviewError(f"instance {instance_id} has no bone age to review")
    accepted = request.bone_age_months is None
    review = Review(
        instance_id=instance_id, assessment_id=assessment.id,
        verdict=ReviewVerdict.ACCEPTED if accepted else ReviewVerdict.MODIFIED,
        reader=reader, recorded_by=recorded_by[:64],
        reader_bone_age_months=assessment.bone_age_months if accepted
        else float(request.bone_age_months),  # type: ignore[arg-type]
        ai_bone_age_months=assessment.bone_age_months,
        comment=(request.comment or None) and request.comment[:2000], created_at=utcnow())
    session.add(review)
    session.flush()
    return review


@dataclass(frozen=True)
class ExportResult:
    written: int
    skipped: dict[str, int]  # why a reviewed case was left out, and how often


def export_labels(session: Session, out_dir: Path) -> ExportResult:
    """Write `out_dir/labels.csv` (`id,boneage,male,path`: the reader's bone age, the sex the
    assessment used when known, the image's path relative to `out_dir`) and the reviewed
    source images as `out_dir/images/<id>.dcm`. The files hold patient identifiers: they
    are the site's own data, for its own training."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, int] = {}
    rows = []
    for review in latest_reviews(session):
        instance = session.get(Instance, review.instance_id)
        assessment = session.get(AssessmentRecord, review.assessment_id)
        source = Path(instance.spool_path) if instance and instance.spool_path else None
        if source is None or not source.is_file():
            skipped["image no longer in the spool"] = skipped.get(
                "image no longer in the spool", 0) + 1
            continue
        case_id = str(review.instance_id)
        shutil.copyfile(source, images / f"{case_id}.dcm")
        sex = assessment.sex_used if assessment else None
        male = {"M": "True", "F": "False"}.get(sex or "", "")  # empty: the header's PatientSex
        rows.append([case_id, f"{review.reader_bone_age_months:g}", male,
                     f"images/{case_id}.dcm"])
    with (out_dir / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "boneage", "male", "path"])
        writer.writerows(rows)
    return ExportResult(len(rows), skipped)
