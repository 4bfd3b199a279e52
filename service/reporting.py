"""From an assessment to the two outputs PACS receives: the SR (record of truth) and the
report image (what every viewer shows). The UIDs are derived from the source and the model
version, so a re-run replaces rather than duplicates; the content is the same apart from the
times highdicom stamps (content date and time), which say when the copy was made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from dicom_io.content import Outcome, ReportContent
from dicom_io.sc import build_sc
from dicom_io.sr import build_sr
from service.gates import REASON_TEXT, Flag

if TYPE_CHECKING:
    from service.pipeline import Assessment

SR, SC = "sr", "sc"


def report_content(assessment: Assessment) -> ReportContent:
    numbers = assessment.numbers()
    model = assessment.model
    return ReportContent(
        outcome=assessment.status,
        algorithm_name=model.name,
        algorithm_version=model.version,
        weights_sha256=model.weights_sha256,
        warning=model.warning,
        synthetic=model.synthetic,
        reason=assessment.reason,
        reason_text=assessment.reason_text,
        flags=tuple((flag, REASON_TEXT[Flag(flag)]) for flag in assessment.flags),
        bone_age_months=numbers["bone_age_months"],
        interval_95=numbers["interval_95"],
        chronological_age_months=numbers["chronological_age_months"],
        chronological_age_note=numbers["chronological_age_source"],
        difference_months=numbers["difference_months"],
        sds=numbers["sds"],
        normal_range_months=numbers["normal_range_months"],
        classification=numbers["classification"],
        stage=numbers["stage"],
        stage_probability=numbers["stage_probability"],
        confidence=numbers["confidence"],
        sex_used=assessment.sex_used,
        gates=tuple(assessment.gates),
    )


def build_outputs(assessment: Assessment, *, report_rejections: bool = True
                  ) -> dict[str, Dataset]:
    """{"sr": ..., "sc": ...} for an assessed image; {"sr": ...} for a rejected one (unless
    rejection reports are off, or the source is not DICOM, or was unreadable: nothing)."""
    radiograph, header = assessment.radiograph, assessment.header
    if header is None or "SOPInstanceUID" not in header or "StudyInstanceUID" not in header:
        return {}
    content = report_content(assessment)
    if assessment.status is Outcome.ASSESSED and radiograph is not None:
        heatmap = None if assessment.prediction is None else assessment.prediction.heatmap
        return {SR: build_sr(header, content),
                SC: build_sc(header, radiograph.pixels, heatmap, content)}
    if not report_rejections:
        return {}
    return {SR: build_sr(header, content)}
