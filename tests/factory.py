"""Small, valid DICOM instances for tests and benchmarks (well-formed patterns), and phantom
radiographs as DICOM files.

Pixel data is a deterministic pattern so that a re-encoded or re-received copy can be
compared value for value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from models.phantom import render
from service.phantoms import phantom_dicom

DX_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")
CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")


def pixels(rows: int, columns: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(rows), np.arange(columns)) % 4096
    noise = rng.integers(0, 64, size=(rows, columns))
    return ((ramp + noise) % 4096).astype(np.uint16)


def make_image(
    *,
    rows: int = 256,
    columns: int = 256,
    seed: int = 0,
    sop_class: UID = DX_FOR_PRESENTATION,
    modality: str = "DX",
    sop_instance_uid: str | None = None,
    study_instance_uid: str | None = None,
    patient_id: str = "TEST-0001",
    body_part: str = "HAND",
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Hand"
    ds.PatientID = patient_id
    ds.PatientSex = "F"
    ds.PatientBirthDate = "20150101"
    ds.StudyDate = "20260101"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels(rows, columns, seed).tobytes()
    return ds


def write_image(path: Path, **kwargs: object) -> Dataset:
    ds = make_image(**kwargs)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds


def phantom_file(directory: Path, age: float = 110.0, seed: int = 4, size: int = 1024) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"phantom-{seed}.dcm"
    phantom_dicom(render(age, True, seed, size=size), f"{seed:04d}").save_as(
        path, enforce_file_format=True)
    return path
