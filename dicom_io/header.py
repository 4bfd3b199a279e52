"""Everything read from a DICOM header: one `HeaderFacts` type, one tolerant reader of
values, and the stricter checks made at receipt.

pydicom is deliberately lenient: a file cut short in its pixel data, or garbage after a valid
file meta header, still "reads". At receipt we want to refuse such data with a clear reason,
so `read_header` checks explicitly that the identifying UIDs are present and well formed, and
that the pixel data's declared length (or its fragments') fits inside the file. The pipeline
reads the same facts with `header_facts`, which turns a missing or malformed value into None
(the gates then say what is missing). `dicom_io.pixels` only decodes pixels.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

_PIXEL_DATA = (0x7FE0, 0x0010)
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float, Double Float


class UnreadableDataset(ValueError):
    """The bytes are not a usable DICOM dataset; the message says why, without patient data."""


class BadIdentifiers(UnreadableDataset):
    """The dataset parses but its identifying UIDs are missing or malformed."""


@dataclass(frozen=True)
class HeaderFacts:
    """What the header says, read before any pixel is decoded: the receiver records the
    identifying part, the header gates judge the rest. Absent or unparseable values are None
    (or "" for a UID, 0 for a size)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str | None
    modality: str | None
    accession_number: str | None = None
    patient_id: str | None = None
    sex: str | None = None  # "M", "F", "O" or None when absent
    birth_date: date | None = None
    study_date: date | None = None
    patient_age: str | None = None  # the AS string, e.g. "010Y"
    body_part: str | None = None  # BodyPartExamined
    anatomic_region: str | None = None  # AnatomicRegionSequence code meaning
    view: str | None = None  # ViewPosition, or the view code's meaning
    laterality: str | None = None
    photometric: str = "MONOCHROME2"
    rows: int = 0
    columns: int = 0
    pixel_spacing_mm: tuple[float, float] | None = None

    @classmethod
    def of_image(cls, name: str, sex: str | None, rows: int, columns: int) -> HeaderFacts:
        """The facts of a PNG/JPEG trial input, which has no header: its name and the sex
        the user gave."""
        return cls(sop_class_uid="", sop_instance_uid=name, study_instance_uid="",
                   series_instance_uid="", transfer_syntax_uid=None, modality=None, sex=sex,
                   rows=rows, columns=columns)


def read_dataset(path: Path) -> Dataset:
    """The whole dataset, pixels included; UnreadableDataset when it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path)
    except Exception as exc:
        raise UnreadableDataset(f"cannot parse dataset: {type(exc).__name__}: {exc}") from None


def without_pixels(dataset: Dataset) -> Dataset:
    """A new dataset holding the header only (the source's own is left whole): what report
    builders need to cite the image and copy patient and study."""
    header = Dataset({tag: element for tag, element in dataset.items()
                      if tag not in _PIXEL_TAGS})
    if hasattr(dataset, "file_meta"):
        header.file_meta = dataset.file_meta
    return header


def header_facts(dataset: Dataset) -> HeaderFacts:
    """Header facts; tolerant of missing or malformed values (they become None)."""
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    return HeaderFacts(
        sop_class_uid=str(dataset.get("SOPClassUID", "")),
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
        study_instance_uid=str(dataset.get("StudyInstanceUID", "")),
        series_instance_uid=str(dataset.get("SeriesInstanceUID", "")),
        transfer_syntax_uid=str(syntax) if syntax else None,
        modality=_text(_get(dataset, "Modality")),
        accession_number=_text(_get(dataset, "AccessionNumber")),
        patient_id=_text(_get(dataset, "PatientID")),
        sex=(_text(_get(dataset, "PatientSex")) or "").upper()[:1] or None,
        birth_date=_date(_get(dataset, "PatientBirthDate")),
        study_date=_date(_get(dataset, "StudyDate") or _get(dataset, "AcquisitionDate")
                         or _get(dataset, "ContentDate")),
        patient_age=_text(_get(dataset, "PatientAge")),
        body_part=_text(_get(dataset, "BodyPartExamined")),
        anatomic_region=_code_meaning(dataset, "AnatomicRegionSequence"),
        view=_text(_get(dataset, "ViewPosition")) or _code_meaning(dataset, "ViewCodeSequence"),
        laterality=_text(_get(dataset, "ImageLaterality")) or _text(_get(dataset, "Laterality")),
        photometric=_text(_get(dataset, "PhotometricInterpretation")) or "MONOCHROME2",
        rows=as_int(_get(dataset, "Rows")),
        columns=as_int(_get(dataset, "Columns")),
        pixel_spacing_mm=_spacing(dataset),
    )


def read_header(path: Path) -> HeaderFacts:
    """Parse the header (not the pixels) at receipt; raise UnreadableDataset (BadIdentifiers
    when the identifying UIDs are missing or malformed)."""
    try:
        with warnings.catch_warnings(), path.open("rb") as handle:
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(handle, stop_before_pixels=True)
            meta = getattr(dataset, "file_meta", None)
            has_syntax = meta is not None and "TransferSyntaxUID" in meta
            syntax = UID(str(meta.TransferSyntaxUID)) if has_syntax else None
            if syntax is not None and not syntax.is_deflated:
                _check_pixel_data(handle, path.stat().st_size, implicit=syntax.is_implicit_VR)
    except InvalidDicomError as exc:
        raise UnreadableDataset(f"not a DICOM file: {exc}") from None
    except UnreadableDataset:
        raise
    except Exception as exc:
        raise UnreadableDataset(f"cannot parse dataset: {type(exc).__name__}: {exc}") from None
    try:
        # pydicom converts elements when first read: a corrupted VR or value surfaces here.
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
                        "SeriesInstanceUID"):
            value = dataset.get(keyword)
            if not value or not UID(str(value)).is_valid:
                raise BadIdentifiers(f"{keyword} is missing or not a valid UID")
        return header_facts(dataset)
    except UnreadableDataset:
        raise
    except Exception as exc:
        raise UnreadableDataset(f"cannot parse element: {type(exc).__name__}: {exc}") from None


def _check_pixel_data(handle: BinaryIO, file_size: int, *, implicit: bool) -> None:
    """Walk the Pixel Data element's header (and fragment items) by seeking, not reading.

    `dcmread(stop_before_pixels=True)` leaves the handle on the Pixel Data tag, if any.
    """
    start = handle.tell()
    header = handle.read(12 if not implicit else 8)
    if len(header) < 8 or struct.unpack("<HH", header[:4]) != _PIXEL_DATA:
        return  # no pixel data (for example a report), nothing more to check
    if implicit:
        (length,) = struct.unpack("<I", header[4:8])
    else:
        (length,) = struct.unpack("<I", header[8:12])
    value_start = start + len(header)
    if length != _UNDEFINED_LENGTH:
        if value_start + length > file_size:
            short = value_start + length - file_size
            raise UnreadableDataset(f"file is truncated: pixel data is {short} bytes short")
        return
    # Encapsulated: items (FFFE,E000) until the sequence delimiter (FFFE,E0DD).
    position = value_start
    while True:
        handle.seek(position)
        item = handle.read(8)
        if len(item) < 8:
            raise UnreadableDataset("file is truncated: encapsulated pixel data has no end")
        group, element, item_length = struct.unpack("<HHI", item)
        if (group, element) == _SEQUENCE_DELIMITER:
            return
        if (group, element) != _ITEM or item_length == _UNDEFINED_LENGTH:
            raise UnreadableDataset("encapsulated pixel data is malformed")
        position += 8 + item_length
        if position > file_size:
            raise UnreadableDataset("file is truncated: a pixel data fragment is cut short")


def _get(dataset: Dataset, keyword: str) -> object:
    """A header value, or None when it is absent or cannot be parsed (bad VR, bad length)."""
    try:
        return dataset.get(keyword)
    except Exception:
        return None


def as_int(value: object) -> int:
    """An IS/US value as an int; 0 when absent or not a number."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _spacing(dataset: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _get(dataset, keyword)
        if value is not None and len(value) == 2:
            try:
                return float(value[0]), float(value[1])
            except (TypeError, ValueError):
                return None
    return None


def _date(value: object) -> date | None:
    text = _text(value)
    if not text or len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _code_meaning(dataset: Dataset, keyword: str) -> str | None:
    sequence = _get(dataset, keyword)
    if not sequence:
        return None
    try:
        item = sequence[0]  # type: ignore[index]
        return _text(item.get("CodeMeaning")) or _text(item.get("CodeValue"))
    except Exception:
        return None


def _text(value: object) -> str | None:
    """Printable text or None: NUL and other control characters (a corrupted header has
    them; PostgreSQL refuses NUL in text) are dropped."""
    if value is None:
        return None
    text = "".join(ch for ch in str(value) if ch.isprintable()).strip()
    return text or None
