"""Writing phantom data sets: PNG + labels in the RSNA layout, and DX DICOM as a modality would.

Ages and sexes are drawn from a real label file when one is given, so the synthetic set has
the prevalence of the real one. Every file says it is synthetic: DICOM series description and
image comments, and the dataset's README.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from dicom_io.dx import HandRadiograph, build_dx
from models.labels import Label, read_labels, write_labels
from models.phantom import MAX_VALUE, SYNTHETIC_NOTE, Phantom, render

STUDY_DATE = date(2026, 1, 15)


@dataclass(frozen=True)
class PhantomSet:
    directory: Path
    labels: list[Label]


def draw_labels(count: int, seed: int, source: Path | None) -> list[tuple[float, bool]]:
    rng = np.random.default_rng(seed)
    if source is not None:
        real = read_labels(source)
        picks = rng.integers(0, len(real), size=count)
        return [(real[i].boneage_months, real[i].male) for i in picks]
    ages = rng.uniform(1, 228, size=count)
    return [(float(round(a)), bool(m)) for a, m in zip(ages, rng.random(count) < 0.5, strict=True)]


def display_png(phantom: Phantom) -> Image.Image:
    """8-bit, bone bright, as the RSNA PNGs are."""
    values = phantom.pixels.astype(np.float32) / MAX_VALUE
    if phantom.photometric == "MONOCHROME1":
        values = 1.0 - values
    return Image.fromarray(np.round(values * 255).astype(np.uint8))


def phantom_dicom(phantom: Phantom, phantom_id: str):  # type: ignore[no-untyped-def]
    birth = STUDY_DATE - timedelta(days=round(phantom.age_months * 30.4375))
    return build_dx(HandRadiograph(
        pixels=phantom.pixels,
        bits_stored=12,
        photometric=phantom.photometric,
        pixel_spacing_mm=phantom.pixel_spacing_mm,
        patient_id=f"PHANTOM-{phantom_id}",
        patient_name=f"Phantom^{phantom_id}",
        sex="M" if phantom.male else "F",
        birth_date=birth,
        study_date=STUDY_DATE,
        accession_number=f"PH{phantom_id}",
        series_description=SYNTHETIC_NOTE,
        image_comments=(
            f"{SYNTHETIC_NOTE}; procedural hand phantom, skeletal age "
            f"{phantom.age_months:g} months, seed {phantom.seed}"
        ),
    ))


def write_phantom_set(
    directory: Path,
    count: int,
    *,
    seed: int = 0,
    size: int = 1024,
    labels_source: Path | None = None,
    dicom: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PhantomSet:
    """`images/<id>.png`, `labels.csv` (id,boneage,male) and optionally `dicom/<id>.dcm`."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    if dicom:
        (directory / "dicom").mkdir(exist_ok=True)
    labels = []
    for index, (age, male) in enumerate(draw_labels(count, seed, labels_source)):
        phantom_id = f"{seed % 1000:03d}{index:06d}"
        phantom = render(age, male, seed * 1_000_003 + index, size=size)
        display_png(phantom).save(directory / "images" / f"{phantom_id}.png")
        if dicom:
            phantom_dicom(phantom, phantom_id).save_as(
                directory / "dicom" / f"{phantom_id}.dcm", enforce_file_format=True
            )
        labels.append(Label(phantom_id, age, male))
        if progress:
            progress(index + 1)
    write_labels(directory / "labels.csv", labels)
    (directory / "README.txt").write_text(
        f"{SYNTHETIC_NOTE}\nProcedural hand radiograph phantoms written by `boneage phantoms` "
        f"(count {count}, seed {seed}, size {size}).\nLabels: skeletal age in months and sex the "
        "phantom was rendered for" + (f", drawn from {labels_source.name}" if labels_source
                                      else "") + ".\n"
    )
    return PhantomSet(directory, labels)
