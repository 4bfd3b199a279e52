"""Every coded concept our reports use, in one place.

Standard codes where one exists (LOINC, DCM, SNOMED CT, UCUM). DICOM's own code lists have no
bone-age concept, so the bone age itself is LOINC 37362-1. Concepts with no standard code use
one local scheme, `99BONEAGE`, declared in each report's Coding Scheme Identification
Sequence; its meanings are listed here and nowhere else.
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.coding import Code

LOCAL_SCHEME = "99BONEAGE"
LOCAL_SCHEME_ITEM = CodingSchemeIdentificationItem(
    designator=LOCAL_SCHEME, name="boneage-pacs local concepts",
    responsible_organization="boneage-pacs",
)

BONE_AGE = Code("37362-1", "LN", "Bones X-ray bone age")
SUBJECT_AGE = Code("121033", "DCM", "Subject Age")
PLAIN_RADIOGRAPHY = Code("168537006", "SCT", "Plain radiography")
HAND = Code("85562004", "SCT", "Hand")
LEFT = Code("7771000", "SCT", "Left")
RIGHT = Code("24028007", "SCT", "Right")
MONTHS = Code("mo", "UCUM", "month")
NO_UNITS = Code("1", "UCUM", "no units")
IMAGING_MEASUREMENT_REPORT = Code("126000", "DCM", "Imaging Measurement Report")
NORMAL_RANGE_LOWER = Code("385524004", "SCT", "Normal Range Lower Limit")  # CID 223
NORMAL_RANGE_UPPER = Code("371933006", "SCT", "Normal Range Upper Limit")  # CID 223
# TID 1419's measurement uncertainty concepts (as highdicom codes them)
UPPER_UNCERTAINTY = Code("371886008", "SCT", "+, range of upper measurement uncertainty")
LOWER_UNCERTAINTY = Code("371885007", "SCT", "-, range of lower measurement uncertainty")
PROCESSING_EQUIPMENT = Code("109102", "DCM", "Processing Equipment")  # CID 7005


def local(value: str, meaning: str) -> Code:
    return Code(value, LOCAL_SCHEME, meaning)


BONE_AGE_DIFFERENCE = local("BA-DIFF", "Bone age minus chronological age")
BONE_AGE_SDS = local("BA-SDS", "Bone age standard deviation score (Greulich-Pyle)")
DEVELOPMENTAL_STAGE = local("BA-STAGE", "Skeletal developmental stage")
MATURITY_CLASS = local("BA-CLASS", "Bone age relative to chronological age")
CONFIDENCE_TIER = local("BA-CONF", "Confidence of the estimate")
GATE_OUTCOME = local("BA-GATE", "Quality gate outcome")
REVIEW_FLAG = local("BA-FLAG", "Review flag")
STAGE_PROBABILITY = local("BA-STAGEP", "Probability of the developmental stage")
UNVERIFIED_WARNING = local("BA-WARN", "Result warning")


def value_code(kind: str, text: str) -> Code:
    """A coded value of the local scheme: the stage, class, tier, outcome or a reason/flag."""
    return local(f"{kind}-{text.upper().replace(' ', '_')}", text)
