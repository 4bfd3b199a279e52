"""Clinical numbers around a bone age: chronological age, the difference, and the
standard-deviation score against the Greulich-Pyle (Brush Foundation) standard deviations.

The SD table is data with its source. It MUST be checked against the atlas (Greulich & Pyle,
Radiographic Atlas of Skeletal Development of the Hand and Wrist, 2nd ed., 1959, the Brush
Foundation standard deviations) before any clinical use; the values were transcribed from the
project's issue text, not read off the atlas by us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np

GP_SD_SOURCE = (
    "Greulich-Pyle atlas, 2nd ed. (1959), Brush Foundation standard deviations, as transcribed "
    "in boneage-pacs issue 4; to be checked against the atlas before clinical use"
)
# Ages (months): 3, 6, 9, 12, 18 months, 2, 2.5, 3, 3.5, 4, 4.5, 5 years, then 6-17 yearly.
GP_SD_AGES_MONTHS = (3, 6, 9, 12, 18, 24, 30, 36, 42, 48, 54, 60,
                     72, 84, 96, 108, 120, 132, 144, 156, 168, 180, 192, 204)
GP_SD_BOYS = (0.69, 1.13, 1.43, 1.97, 3.52, 3.92, 4.52, 5.08, 5.40, 6.66, 8.36, 8.79,
              9.17, 8.91, 9.10, 9.00, 9.79, 10.09, 10.38, 10.44, 10.72, 11.32, 12.86, 13.05)
GP_SD_GIRLS = (0.72, 1.16, 1.36, 1.77, 3.49, 4.64, 5.37, 5.97, 7.48, 8.98, 10.73, 11.65,
               10.23, 9.64, 10.23, 10.74, 11.73, 11.94, 10.24, 10.67, 11.30, 9.23, 7.31)
NORMAL_LIMIT_SDS = 2.0
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class ChronologicalAge:
    months: float | None
    source: str  # "birth date and study date", "PatientAge", or why it is unknown


@dataclass(frozen=True)
class ClinicalNumbers:
    chronological_age_months: float | None
    chronological_age_source: str
    difference_months: float | None  # bone age - chronological age
    sd_months: float | None  # Greulich-Pyle SD for this sex at this chronological age
    sds: float | None
    classification: str | None  # "delayed", "normal", "advanced"
    normal_range_months: tuple[float, float] | None  # chronological age +/- 2 SD


def chronological_age(birth: date | None, study: date | None,
                      patient_age: str | None) -> ChronologicalAge:
    if birth and study:
        if study < birth:
            return ChronologicalAge(None, "study date before birth date")
        return ChronologicalAge((study - birth).days / DAYS_PER_MONTH,
                                "birth date and study date")
    parsed = parse_age_string(patient_age)
    if parsed is not None:
        return ChronologicalAge(parsed, "PatientAge")
    return ChronologicalAge(None, "no birth date with study date, and no PatientAge")


def parse_age_string(value: str | None) -> float | None:
    """DICOM AS (nnnD, nnnW, nnnM, nnnY) in months."""
    match = re.fullmatch(r"(\d{3})([DWMY])", (value or "").strip().upper())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return {"D": number / DAYS_PER_MONTH, "W": number * 7 / DAYS_PER_MONTH, "M": float(number),
            "Y": number * 12.0}[unit]


def gp_sd(age_months: float, male: bool) -> float | None:
    """The SD at this age, linearly interpolated; None outside the table's ages."""
    table = GP_SD_BOYS if male else GP_SD_GIRLS
    ages = GP_SD_AGES_MONTHS[: len(table)]
    if age_months < ages[0] or age_months > ages[-1]:
        return None
    return float(np.interp(age_months, ages, table))


def clinical_numbers(bone_age_months: float, chrono: ChronologicalAge,
                     sex: str | None) -> ClinicalNumbers:
    if chrono.months is None:
        return ClinicalNumbers(None, chrono.source, None, None, None, None, None)
    difference = bone_age_months - chrono.months
    sd = gp_sd(chrono.months, sex == "M") if sex in {"M", "F"} else None
    if sd is None:
        return ClinicalNumbers(chrono.months, chrono.source, difference, None, None, None, None)
    sds = difference / sd
    classification = ("delayed" if sds < -NORMAL_LIMIT_SDS else
                      "advanced" if sds > NORMAL_LIMIT_SDS else "normal")
    band = NORMAL_LIMIT_SDS * sd
    return ClinicalNumbers(chrono.months, chrono.source, difference, sd, sds, classification,
                           (chrono.months - band, chrono.months + band))
