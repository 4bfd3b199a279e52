"""Decoding a stored image into a `Radiograph`: float32 pixels in [0, 1] with bone bright,
whatever the modality, photometric interpretation, LUTs or transfer syntax were.

Order, as a viewer applies them: Modality LUT (or rescale) -> VOI LUT or window (a robust
percentile window when the file has neither) -> inversion for MONOCHROME1 or a Presentation
LUT Shape of INVERSE (one inversion: the standard pairs the two). Compressed syntaxes decode
through pydicom's pylibjpeg plugins (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE).
An RGB image (a secondary capture of a radiograph, or a photograph) becomes gray; how colourful
it was is kept for the colour-photo gate.

Every failure raises `DecodeError` with a reason that names no patient. What the header says
is read by `dicom_io.header`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from dicom_io.header import (
    HeaderFacts,
    UnreadableDataset,
    as_int,
    header_facts,
    read_dataset,
    without_pixels,
)

ROBUST_WINDOW = (0.5, 99.5)  # percentiles used when a file carries no window


class DecodeError(UnreadableDataset):
    """The pixels cannot be turned into a radiograph; the message says why."""


@dataclass(frozen=True)
class Radiograph:
    """DESIGN.md's Radiograph: display-ready pixels and the header facts the pipeline uses."""

    facts: HeaderFacts
    pixels: np.ndarray  # float32 (rows, columns) in [0, 1], bone bright
    color_saturation: float | None  # mean HSV saturation of a colour image, else None
    header: Dataset | None  # the source dataset without pixel data (None for PNG/JPEG input)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def read_radiograph(path: Path) -> Radiograph:
    return decode(read_dataset(path))


def read_radiograph_pixels(path: Path) -> np.ndarray:
    """Just the pixels (the training set reader)."""
    return read_radiograph(path).pixels


def decode(dataset: Dataset, facts: HeaderFacts | None = None) -> Radiograph:
    facts = facts or header_facts(dataset)
    if "PixelData" not in dataset and "FloatPixelData" not in dataset:
        raise DecodeError("the dataset has no pixel data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = dataset.pixel_array
    except NotImplementedError as exc:
        syntax = facts.transfer_syntax_uid
        name = pydicom.uid.UID(syntax).name if syntax else "unknown"
        raise DecodeError(f"no decoder for transfer syntax {name}: {exc}") from None
    except Exception as exc:
        raise DecodeError(f"pixel data cannot be decoded: {type(exc).__name__}: {exc}") from None
    if as_int(dataset.get("NumberOfFrames", 1)) > 1:
        raw = raw[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels, saturation = _display(dataset, raw, facts.photometric)
    except Exception as exc:
        raise DecodeError(f"grayscale transforms failed: {type(exc).__name__}: {exc}") from None
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise DecodeError(f"pixel array has shape {pixels.shape}, not an image")
    if not np.isfinite(pixels).all():
        raise DecodeError("pixel values are not finite")
    return Radiograph(facts, pixels.astype(np.float32, copy=False), saturation,
                      without_pixels(dataset))


def from_image(pixels: np.ndarray, sex: str | None, name: str) -> Radiograph:
    """A PNG/JPEG trial input (no header): only the pixels and the sex given by the user."""
    facts = HeaderFacts.of_image(name, sex, int(pixels.shape[0]), int(pixels.shape[1]))
    return Radiograph(facts, pixels.astype(np.float32, copy=False), None, None)


def _display(dataset: Dataset, raw: np.ndarray, photometric: str
             ) -> tuple[np.ndarray, float | None]:
    if photometric == "PALETTE COLOR":
        raw = apply_color_lut(raw, dataset)
        photometric = "RGB"
    if raw.ndim == 3 and raw.shape[-1] == 3:  # pydicom returns YBR as RGB by default
        rgb = raw.astype(np.float32)
        rgb /= float(rgb.max()) if rgb.max() > 0 else 1.0
        return _robust_window(rgb @ np.array([0.299, 0.587, 0.114], np.float32)), \
            _saturation(rgb)
    values = apply_modality_lut(raw, dataset).astype(np.float32)
    if "VOILUTSequence" in dataset:
        lut = dataset.VOILUTSequence[0]
        bits = int(lut.LUTDescriptor[2])
        values = apply_voi_lut(values, dataset, index=0).astype(np.float32) / (2**bits - 1)
        values = np.clip(values, 0.0, 1.0)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        values = _window(values, _first(dataset.WindowCenter), _first(dataset.WindowWidth),
                         str(dataset.get("VOILUTFunction", "LINEAR")).strip().upper())
    else:
        values = _robust_window(values)
    inverse = str(dataset.get("PresentationLUTShape", "")).strip().upper() == "INVERSE"
    if photometric == "MONOCHROME1" or inverse:
        values = 1.0 - values
    return values, None


def _window(values: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT and SIGMOID, to [0, 1]."""
    if width <= 0 or (function == "LINEAR" and width < 1):
        return _robust_window(values)
    if function == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))).astype(np.float32)
    if function == "LINEAR_EXACT":
        out = (values - (centre - width / 2)) / width
    else:
        out = (values - (centre - 0.5)) / (width - 1) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _robust_window(values: np.ndarray) -> np.ndarray:
    sample = values[:: max(values.shape[0] // 512, 1), :: max(values.shape[1] // 512, 1)]
    low, high = np.percentile(sample, ROBUST_WINDOW)
    if high <= low:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _saturation(rgb: np.ndarray) -> float:
    step = max(rgb.shape[0] // 256, 1)
    sample = rgb[::step, ::step].reshape(-1, 3)
    high, low = sample.max(axis=1), sample.min(axis=1)
    return float(np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0).mean())


def _first(value: object) -> float:
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        value = value[0]
    return float(value)  # type: ignore[arg-type]


