"""Quality gates: each check returns a GateResult; every result is stored, passed or not.

Reason codes are a contract shared by the audit DB, the reports, the admin CLI and the tests:
a rejected instance carries the code of the first gate that failed. Flags do not reject; they
travel with an assessment for the radiologist to weigh.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field


class Reason(enum.StrEnum):
    UNSUPPORTED_SOP_CLASS = "UNSUPPORTED_SOP_CLASS"
    WRONG_MODALITY = "WRONG_MODALITY"
    WRONG_BODY_PART = "WRONG_BODY_PART"
    WRONG_VIEW = "WRONG_VIEW"
    DECODE_FAILED = "DECODE_FAILED"
    IMAGE_TOO_SMALL = "IMAGE_TOO_SMALL"
    COLOR_PHOTO = "COLOR_PHOTO"
    BLANK_IMAGE = "BLANK_IMAGE"
    OVEREXPOSED = "OVEREXPOSED"
    SYNTHETIC_PATTERN = "SYNTHETIC_PATTERN"
    LOW_CONTRAST = "LOW_CONTRAST"
    EDGE_DENSITY = "EDGE_DENSITY"
    NOT_A_HAND = "NOT_A_HAND"
    SKELETALLY_MATURE = "SKELETALLY_MATURE"
    AGE_OUT_OF_RANGE = "AGE_OUT_OF_RANGE"


class Flag(enum.StrEnum):
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    HEADS_DISAGREE = "HEADS_DISAGREE"
    IMPLAUSIBLE_FOR_AGE = "IMPLAUSIBLE_FOR_AGE"
    SEX_MISSING = "SEX_MISSING"


# What each code means, in words a PACS admin and a radiologist read in the report.
REASON_TEXT = {
    Reason.UNSUPPORTED_SOP_CLASS: "not a CR, DX or (when allowed) secondary capture image",
    Reason.WRONG_MODALITY: "modality is not CR or DX",
    Reason.WRONG_BODY_PART: "the header names a body part other than the hand",
    Reason.WRONG_VIEW: "the view is not PA or AP",
    Reason.DECODE_FAILED: "the pixel data could not be decoded",
    Reason.IMAGE_TOO_SMALL: "the image is too small to assess",
    Reason.COLOR_PHOTO: "the image is in colour (a photograph, not a radiograph)",
    Reason.BLANK_IMAGE: "the image is blank or nearly uniform",
    Reason.OVEREXPOSED: "the image is too bright or too dark overall",
    Reason.SYNTHETIC_PATTERN: "the intensity distribution is flat, as in a synthetic gradient",
    Reason.LOW_CONTRAST: "the displayed contrast is too low",
    Reason.EDGE_DENSITY: "edge density is outside the range of radiographs",
    Reason.NOT_A_HAND: "the image does not show a hand",
    Reason.SKELETALLY_MATURE: "growth plates are fused (adult): bone age does not apply",
    Reason.AGE_OUT_OF_RANGE: "chronological age is outside 0-19 years",
    Flag.LOW_CONFIDENCE: "low confidence: expert review advised",
    Flag.HEADS_DISAGREE: "the stage head and the age estimate disagree by more than one stage",
    Flag.IMPLAUSIBLE_FOR_AGE: "bone age is more than 4 SD from chronological age",
    Flag.SEX_MISSING: "patient sex missing: assessed for both sexes, no SDS",
}


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    code: str | None  # the reason (or flag) code when not passed
    value: float | str | None  # what was measured
    threshold: str | None  # what it was held against, in words ("> 0.02", "PA|AP")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GateThresholds(BaseModel):
    """Configurable limits (BONEAGE_GATES__<NAME>, or a [gates] table in the config file)."""

    model_config = {"frozen": True}

    allow_secondary_capture: bool = False
    min_image_px: int = Field(256, ge=16)
    max_color_saturation: float = Field(0.15, ge=0, le=1)
    min_intensity_std: float = Field(0.03, ge=0)
    min_mean_brightness: float = Field(0.04, ge=0, le=1)
    max_mean_brightness: float = Field(0.90, ge=0, le=1)
    min_histogram_peak: float = Field(1.6, ge=0)
    min_dynamic_range: float = Field(0.15, ge=0, le=1)
    min_edge_density: float = Field(0.001, ge=0, le=1)
    max_edge_density: float = Field(0.30, ge=0, le=1)
    min_hand_probability: float = Field(0.5, ge=0, le=1)
    max_chronological_age_years: float = Field(19.0, gt=0)
    implausible_sds: float = Field(4.0, gt=0)
    # Bone age at which the hand's growth plates are fused (out of scope), by sex.
    mature_bone_age_boys_months: float = Field(216.0, gt=0)
    mature_bone_age_girls_months: float = Field(204.0, gt=0)
