"""From an assessment to the two outputs PACS receives: the SR (record of truth) and the
report image (what every viewer shows). Pure: same assessment and settings, same datasets
(UIDs included), so a re-run replaces rather than duplicates.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicom_io.sc import build_sc
from dicom_io.sr import ReportContent, build_sr
from models.card import ModelCard
from service.gates import REASON_TEXT, Flag
from service.pipeline import ASSESSED, Assessment

SR, SC = "sr", "sc"


def report_content(assessment: Assessment, card: ModelCard) -> ReportContent:
    numbers = assessment.numbers()
    return ReportContent(
        outcome=assessment.status,
        algorithm_name=card.name,
        algorithm_version=card.version,
        weights_sha256=card.weights_sha256,
        warning=card.warning,
        synthetic=card.synthetic,
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
        gates=tuple((g.name, g.passed, g.code, g.value, g.threshold) for g in assessment.gates),
    )


def build_outputs(assessment: Assessment, card: ModelCard, *,
                  report_rejections: bool = True) -> dict[str, Dataset]:
    """{"sr": ..., "sc": ...} for an assessed image; {"sr": ...} for a rejected one (unless
    rejection reports are off, or the source is not DICOM, or was unreadable: nothing)."""
    radiograph, header = assessment.radiograph, assessment.header
    if header is None or "SOPInstanceUID" not in header or "StudyInstanceUID" not in header:
        return {}
    content = report_content(assessment, card)
    if assessment.status == ASSESSED and radiograph is not None:
        heatmap = None if assessment.prediction is None else assessment.prediction.heatmap
        return {SR: build_sr(header, content),
                SC: build_sc(header, radiograph.pixels, heatmap, content)}
    if not report_rejections:
        return {}
    return {SR: build_sr(header, content)}
