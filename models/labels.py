"""Bone-age label files in the RSNA Pediatric Bone Age layout: `id,boneage,male`."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Label:
    id: str
    boneage_months: float
    male: bool | None  # None only where the sex comes from elsewhere (DICOM PatientSex)


def read_labels(path: Path, *, sex_required: bool = True) -> list[Label]:
    """Read an RSNA-style CSV (`male` as True/False or 1/0). Without `sex_required`, the
    `male` column may be missing or empty and the sex is left to the images' headers."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"id", "boneage"} | ({"male"} if sex_required else set())
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return [Label(row["id"], float(row["boneage"]), _sex(row.get("male"))) for row in reader]


def _sex(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    if not text:
        return None
    return text in {"true", "1", "m", "male"}


def write_labels(path: Path, labels: list[Label]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "boneage", "male"])
        for label in labels:
            writer.writerow([label.id, f"{label.boneage_months:g}", str(label.male)])
