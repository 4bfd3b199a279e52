"""Quality gates: each check returns a GateResult; every result is stored, passed or not.

Reason codes are a contract shared by the audit DB, the reports, the admin CLI and the tests:
a rejected instance carries the code of the first gate that failed. Flags do not reject; they
travel with an assessment for the radiologist to weigh.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

from dicom_io.content import GateResult

__all__ = ["REASON_TEXT", "Flag", "GateResult", "GateThresholds", "Reason"]


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


class GateThresholds(BaseModel):
    """Configurable limits (BONEAGE_GATES__<NAME>, or a [gates] table in the config file).

    The image limits were set from `bench/gates.py` on real images: 1,000 RSNA hands at
    299 px from the fixed split's calibration part (never trained on), the ten full-size
    development hands, pydicom-data's chest/ankle CR, CT, MR and ultrasound, and 400 MedNIST
    images of each non-hand class. Each comment gives the real-hand extreme it keeps clear of
    and the failing case it still catches. Measured 2026-11-24 (figures in the README).
    """

    model_config = {"frozen": True}

    allow_secondary_capture: bool = False
    min_image_px: int = Field(256, ge=16)
    max_color_saturation: float = Field(0.15, ge=0, le=1)
    # Real hands: min 0.021 (299 px), 0.144 (full size); a blank image with sensor noise: 0.003.
    # Half the lowest real hand. (Seed: 0.03, which rejected 0.3% of real hands.)
    min_intensity_std: float = Field(0.01, ge=0)
    # Real hands: mean 0.032-0.63 (299 px), 0.34-0.58 (full size). 0.02 is 0.6x the dimmest;
    # 0.90 is 1.4x the brightest and catches burned-out exposures (seed: 0.04-0.95).
    min_mean_brightness: float = Field(0.02, ge=0, le=1)
    max_mean_brightness: float = Field(0.90, ge=0, le=1)
    # Real hands: min 4.25 (299 px), 4.07 (full size); a synthetic ramp: 1.0, a diagonal ramp
    # test pattern with noise: 1.87. 0.6x the lowest real hand (seed: 1.6).
    min_histogram_peak: float = Field(2.5, ge=0)
    # Real hands: min 48.5 (299 px; 0.1st percentile 48.6), 44.2 (full size); a fogged copy
    # whose anatomy spans less than the noise: 3.6. A quarter of the lowest real hand.
    min_contrast_to_noise: float = Field(11.0, ge=0)
    # Real hands: 0.0011-0.158 (299 px), 0.004-0.014 (full size); noise 0.45, MedNIST CXR
    # median 0.47. The low end is half the quietest real hand (seed: 0.005, which rejected
    # 5% of real hands at 299 px); the high end twice the busiest.
    min_edge_density: float = Field(0.0005, ge=0, le=1)
    max_edge_density: float = Field(0.30, ge=0, le=1)
    # The hand check's probability. Real hands at 299 px below 0.02: 1.1% of the calibration
    # part, 0.25% of the validation part (5.5% and 4.3% below the former 0.5); full-size dev
    # hands >= 0.92; pydicom-data's chest/ankle CR, CT, MR and US <= 0.0008; a ramp test
    # pattern 0.016; MedNIST non-hands <= 0.08 (the 1-2% of head CTs above it fail the image
    # gates). 25x over the highest real negative, 50x under the median hand.
    min_hand_probability: float = Field(0.02, ge=0, le=1)
    max_chronological_age_years: float = Field(19.0, gt=0)
    implausible_sds: float = Field(4.0, gt=0)
    # Bone age at which the hand's growth plates are fused (out of scope), by sex.
    mature_bone_age_boys_months: float = Field(216.0, gt=0)
    mature_bone_age_girls_months: float = Field(204.0, gt=0)
