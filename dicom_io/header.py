"""Reading the identifying header of a received file, and telling broken files apart.

pydicom is deliberately lenient: a file cut short in its pixel data, or garbage after a valid
file meta header, still "reads". At receipt we want to refuse such data with a clear reason,
so the checks here are explicit: the identifying UIDs are present and well formed, and the
pixel data's declared length (or its fragments') fits inside the file.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

_PIXEL_DATA = (0x7FE0, 0x0010)
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_UNDEFINED_LENGTH = 0xFFFFFFFF


class UnreadableDataset(ValueError):
    """The bytes are not a usable DICOM dataset; the message says why, without patient data."""


class BadIdentifiers(ValueError):
    """The dataset parses but its identifying UIDs are missing or malformed."""


@dataclass(frozen=True)
class InstanceKey:
    """What names an instance and how it is encoded: shared by the receiver's header facts
    and the pipeline's image facts."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str | None
    modality: str | None


@dataclass(frozen=True)
class HeaderFacts(InstanceKey):
    accession_number: str | None
    patient_id: str | None


def read_header(path: Path) -> HeaderFacts:
    """Parse the header (not the pixels); raise UnreadableDataset or BadIdentifiers."""
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

    identifiers = {}
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = dataset.get(keyword)
        if not value or not UID(str(value)).is_valid:
            raise BadIdentifiers(f"{keyword} is missing or not a valid UID")
        identifiers[keyword] = str(value)

    return HeaderFacts(
        sop_class_uid=identifiers["SOPClassUID"],
        sop_instance_uid=identifiers["SOPInstanceUID"],
        study_instance_uid=identifiers["StudyInstanceUID"],
        series_instance_uid=identifiers["SeriesInstanceUID"],
        transfer_syntax_uid=str(syntax) if syntax else None,
        modality=_text(dataset.get("Modality")),
        accession_number=_text(dataset.get("AccessionNumber")),
        patient_id=_text(dataset.get("PatientID")),
    )


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


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
