"""A small PNG of a stored 8-bit image (the report image, an RGB secondary capture), for a
web page that cannot show DICOM. Only 8-bit RGB or MONOCHROME2 is rendered as it is stored;
anything needing a window is refused rather than shown wrongly."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from pydicom import dcmread


class NotRenderable(ValueError):
    """The file is not an 8-bit RGB or MONOCHROME2 image."""


def png_thumbnail(path: Path, max_side: int = 320) -> bytes:
    dataset = dcmread(path)
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if int(dataset.get("BitsAllocated", 0)) != 8 or photometric not in {"RGB", "MONOCHROME2"}:
        raise NotRenderable(f"{photometric or 'no'} image, {dataset.get('BitsAllocated')} bits")
    image = Image.fromarray(dataset.pixel_array)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
