"""Bone-age label files in the RSNA Pediatric Bone Age layout: `id,boneage,male`."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Label:
    id: str
    boneage_months: float
    male: bool


def read_labels(path: Path) -> list[Label]:
    """Read an RSNA-style CSV (`male` as True/False or 1/0)."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"id", "boneage", "male"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return [
            Label(row["id"], float(row["boneage"]), row["male"].strip().lower() in {"true", "1"})
            for row in reader
        ]


def write_labels(path: Path, labels: list[Label]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "boneage", "male"])
        for label in labels:
            writer.writerow([label.id, f"{label.boneage_months:g}", str(label.male)])
