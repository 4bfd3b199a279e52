"""Header gates: what the DICOM header says, checked before any pixel is decoded."""

from __future__ import annotations

from dicom_io.header import HeaderFacts
from dicom_io.sop import (
    CR_IMAGE_STORAGE,
    DX_FOR_PRESENTATION,
    DX_FOR_PROCESSING,
    SECONDARY_CAPTURE,
)
from service.gates import Flag, GateResult, GateThresholds, Reason

RADIOGRAPH_CLASSES = {CR_IMAGE_STORAGE, DX_FOR_PRESENTATION, DX_FOR_PROCESSING}
HAND_WORDS = ("HAND", "WRIST", "FINGER", "CARP", "METACARP")
# Body-part values that neither confirm nor contradict a hand: the image gates decide.
AMBIGUOUS_PARTS = {"EXTREMITY", "EXTREMITIES", "UPPER EXTREMITY", "UPPER LIMB", "ARM", "LIMB",
                   "UPPER EXTREMITIES", "SKELETON", "BONE", "BONES"}
ACCEPTED_VIEWS = ("PA", "AP", "POSTERO-ANTERIOR", "ANTERO-POSTERIOR", "POSTEROANTERIOR",
                  "ANTEROPOSTERIOR")


def sop_class_gate(facts: HeaderFacts, limits: GateThresholds) -> GateResult:
    allowed = set(RADIOGRAPH_CLASSES)
    if limits.allow_secondary_capture:
        allowed.add(SECONDARY_CAPTURE)
    return GateResult("sop_class", facts.sop_class_uid in allowed,
                      None if facts.sop_class_uid in allowed else Reason.UNSUPPORTED_SOP_CLASS,
                      facts.sop_class_uid, "CR|DX" + ("|SC" if limits.allow_secondary_capture
                                                      else ""))


def modality_gate(facts: HeaderFacts, limits: GateThresholds) -> GateResult:
    allowed = {"CR", "DX"} | ({"OT", "SC"} if facts.sop_class_uid == SECONDARY_CAPTURE else set())
    passed = (facts.modality or "").upper() in allowed
    return GateResult("modality", passed, None if passed else Reason.WRONG_MODALITY,
                      facts.modality, "|".join(sorted(allowed)))


def body_part_gate(facts: HeaderFacts) -> GateResult:
    stated = [v.upper() for v in (facts.body_part, facts.anatomic_region) if v]
    shown = " / ".join(stated) if stated else "absent"
    if not stated:
        return GateResult("body_part", True, None, shown, "hand, or absent (image decides)")
    hand = any(word in value for value in stated for word in HAND_WORDS)
    ambiguous = all(value in AMBIGUOUS_PARTS for value in stated)
    passed = hand or ambiguous
    return GateResult("body_part", passed, None if passed else Reason.WRONG_BODY_PART, shown,
                      "hand, or absent (image decides)")


def view_gate(facts: HeaderFacts) -> GateResult:
    view = (facts.view or "").upper().strip()
    passed = not view or view in ACCEPTED_VIEWS
    return GateResult("view", passed, None if passed else Reason.WRONG_VIEW, view or "absent",
                      "PA|AP or absent")


def sex_gate(facts: HeaderFacts) -> GateResult:
    """Missing or other sex is not a rejection: the model runs for both sexes and the report
    says so (flag SEX_MISSING, no SDS)."""
    known = facts.sex in {"M", "F"}
    return GateResult("patient_sex", known, None if known else Flag.SEX_MISSING,
                      facts.sex or "absent", "M|F")


def age_gate(age_months: float | None, limits: GateThresholds) -> GateResult:
    limit = limits.max_chronological_age_years * 12
    if age_months is None:
        return GateResult("chronological_age", True, None, "unknown", f"0-{limit:g} months")
    passed = 0 <= age_months <= limit
    return GateResult("chronological_age", passed, None if passed else Reason.AGE_OUT_OF_RANGE,
                      round(age_months, 1), f"0-{limit:g} months")


def size_gate(rows: int, columns: int, limits: GateThresholds) -> GateResult:
    smaller = min(rows, columns)
    passed = smaller >= limits.min_image_px
    return GateResult("image_size", passed, None if passed else Reason.IMAGE_TOO_SMALL,
                      smaller, f">= {limits.min_image_px} px")


def header_gates(facts: HeaderFacts, age_months: float | None,
                 limits: GateThresholds) -> list[GateResult]:
    return [
        sop_class_gate(facts, limits),
        modality_gate(facts, limits),
        body_part_gate(facts),
        view_gate(facts),
        sex_gate(facts),
        age_gate(age_months, limits),
        size_gate(facts.rows, facts.columns, limits),
    ]
