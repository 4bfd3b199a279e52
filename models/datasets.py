"""Training sets on disk: the RSNA layout (`<id>.png` + `id,boneage,male`), or a folder of
DICOM with a labels CSV whose ids are file names or SOP Instance UIDs.

A `Sample` holds a path and a module-level reader function rather than pixels, so a list of
thousands costs nothing, and samples pickle into DataLoader worker processes. Decoding DICOM
pixels properly (modality and VOI LUTs, MONOCHROME1, compressed syntaxes) is `dicom_io`'s job,
and `models` imports nothing of ours: the caller passes that reader in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from models.labels import read_labels
from models.phantom import SYNTHETIC_NOTE

PixelReader = Callable[[Path], np.ndarray]  # path -> 2-D float32 in [0, 1], bone bright
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Sample:
    id: str
    age_months: float
    male: bool
    path: Path
    reader: PixelReader

    def pixels(self) -> np.ndarray:
        return self.reader(self.path)


class DatasetError(ValueError):
    """A training or evaluation set on disk is unusable; the message says why."""


def read_image_file(path: Path) -> np.ndarray:
    """A PNG or JPEG as float32 in [0, 1] (8- or 16-bit gray; colour becomes gray)."""
    with Image.open(path) as image:
        if image.mode in {"I;16", "I;16B", "I"}:
            values = np.asarray(image, dtype=np.float32)
            return values / (65535.0 if values.max() > 255 else 255.0)
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def is_synthetic_set(data_dir: Path) -> bool:
    """A folder written by `boneage phantoms` says so in its README."""
    readme = data_dir / "README.txt"
    return readme.is_file() and SYNTHETIC_NOTE in readme.read_text(errors="replace")


def labels_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rsna_samples(data_dir: Path, labels_csv: Path) -> list[Sample]:
    """Samples of an RSNA-layout folder: `<id>.png` in `data_dir` or `data_dir/images`."""
    folders = [data_dir, data_dir / "images"]
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in folder.iterdir():
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    found.setdefault(path.stem, path)
    return _match(read_labels(labels_csv), found, labels_csv, read_image_file, sexes=None)


def dicom_samples(data_dir: Path, labels_csv: Path, reader: PixelReader) -> list[Sample]:
    """Samples of a DICOM folder (searched recursively). Labels need `id` and `boneage`; sex
    comes from the `male` column when there is one, otherwise from PatientSex."""
    found: dict[str, Path] = {}
    sexes: dict[str, bool] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        uid = str(header.get("SOPInstanceUID", ""))
        sex = str(header.get("PatientSex", "")).upper()
        for key in (path.stem, uid):
            if key:
                found.setdefault(key, path)
                if sex in {"M", "F"}:
                    sexes[key] = sex == "M"
    return _match(read_labels(labels_csv, sex_required=False), found, labels_csv, reader, sexes)


def _match(
    labels, found: dict[str, Path], labels_csv: Path, reader: PixelReader,  # type: ignore[no-untyped-def]
    sexes: dict[str, bool] | None,
) -> list[Sample]:
    samples, missing, sexless = [], 0, 0
    for label in labels:
        path = found.get(label.id)
        if path is None:
            missing += 1
            continue
        male = label.male
        if male is None:
            male = (sexes or {}).get(label.id)
            if male is None:
                sexless += 1
                continue
        samples.append(Sample(label.id, label.boneage_months, male, path, reader))
    if not samples:
        raise DatasetError(
            f"no image matches a label of {labels_csv.name} "
            f"({len(labels)} labels, {len(found)} images found)"
        )
    if missing or sexless:
        raise DatasetError(
            f"{labels_csv.name}: {missing} labelled image(s) not found and {sexless} without a "
            "sex (no `male` column value and no PatientSex); fix the set rather than train on "
            "part of it"
        )
    return samples


def split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample],
                                                                        list[Sample]]:
    """A seeded train/validation split (at least one validation sample)."""
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = max(1, round(len(samples) * val_fraction))
    if n_val >= len(samples):
        raise DatasetError(f"{len(samples)} sample(s) are too few to hold out a validation set")
    val = [samples[i] for i in order[:n_val]]
    train = [samples[i] for i in order[n_val:]]
    return train, val
