"""The report image: a secondary capture every viewer shows, with the result burned in.

Left: the radiograph (bone bright, as decoded) with the Grad-CAM heatmap blended over it.
Right: a text panel with bone age and interval, chronological age, difference, SDS, stage,
confidence, model and version, and the warning. RGB, 8 bits, BurnedInAnnotation YES, no window
or rescale copied from the source (a viewer would apply them to RGB and show black), laterality
and patient orientation from the source, a new series in the same study.
"""

from __future__ import annotations

import numpy as np
from highdicom.sc import SCImage
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from dicom_io.content import Outcome, ReportContent
from dicom_io.sr import PRODUCT, completed, contributing_equipment, series_description
from dicom_io.uids import derive_uid

SC_SERIES_NUMBER = 9902
IMAGE_HEIGHT = 1024
PANEL_WIDTH = 560
WARNING_COLOUR = (255, 200, 0)


def render_report_image(pixels: np.ndarray, heatmap: np.ndarray | None,
                        content: ReportContent) -> np.ndarray:
    """(rows, columns, 3) uint8: the radiograph with its heatmap, beside the text panel.

    Empty detector columns at the sides (no signal at all, as when a narrow hand lies on a
    wide plate) are left out, so the panel sits beside the hand rather than across a black
    band."""
    keep = content_columns(pixels)
    pixels = pixels[:, keep]
    heatmap = None if heatmap is None else heatmap[:, keep]
    scale = IMAGE_HEIGHT / pixels.shape[0]
    width = max(round(pixels.shape[1] * scale), 1)
    gray = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    gray = gray.resize((width, IMAGE_HEIGHT), Image.Resampling.BILINEAR)
    base = np.repeat(np.asarray(gray, dtype=np.float32)[:, :, None], 3, axis=2)
    if heatmap is not None:
        heat = Image.fromarray(np.clip(heatmap, 0, 1).astype(np.float32), mode="F")
        heat_small = np.asarray(heat.resize((width, IMAGE_HEIGHT), Image.Resampling.BILINEAR))
        alpha = np.clip((heat_small - 0.2) / 0.8, 0, 1)[:, :, None] * 0.55
        base = base * (1 - alpha) + _colour_map(heat_small) * alpha
    canvas = Image.new("RGB", (width + PANEL_WIDTH, IMAGE_HEIGHT), (0, 0, 0))
    canvas.paste(Image.fromarray(base.astype(np.uint8)), (0, 0))
    _draw_panel(ImageDraw.Draw(canvas), width + 20, content)
    if content.warning:  # also across the image itself, so a crop cannot lose it
        draw = ImageDraw.Draw(canvas)
        draw.text((10, IMAGE_HEIGHT - 40), "NOT FOR DIAGNOSTIC USE", fill=WARNING_COLOUR,
                  font=_font(26))
    return np.asarray(canvas, dtype=np.uint8)


EMPTY_LEVEL = 0.04  # a column whose brightest pixel is below this shows nothing
SIDE_MARGIN = 0.02  # of the kept width, left around the content


def content_columns(pixels: np.ndarray) -> slice:
    """The columns between the first and the last that show anything, with a small margin;
    all of them when none or every column does."""
    shown = np.flatnonzero(pixels.max(axis=0) >= EMPTY_LEVEL)
    if shown.size == 0:
        return slice(0, pixels.shape[1])
    margin = int(SIDE_MARGIN * (shown[-1] - shown[0] + 1))
    return slice(max(int(shown[0]) - margin, 0),
                 min(int(shown[-1]) + 1 + margin, pixels.shape[1]))


def build_sc(source: Dataset, pixels: np.ndarray, heatmap: np.ndarray | None,
             content: ReportContent) -> SCImage:
    source = completed(source)
    image = render_report_image(pixels, heatmap, content)
    version = content.algorithm_version
    laterality = str(source.get("ImageLaterality") or source.get("Laterality") or "") or None
    orientation = source.get("PatientOrientation")
    sc = SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=image,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=derive_uid(source.StudyInstanceUID, version, "sc-series"),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=derive_uid(source.SOPInstanceUID, version, "sc"),
        instance_number=1,
        manufacturer=PRODUCT,
        laterality=laterality if laterality in {"L", "R"} else None,
        patient_orientation=tuple(orientation) if orientation and len(orientation) == 2
        else ("A", "F"),
        series_description=series_description("IMAGE", content),
        contributing_equipment=[contributing_equipment(content)],
    )
    sc.BurnedInAnnotation = "YES"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.ConversionType = "WSD"
    return sc


def _panel_lines(content: ReportContent) -> list[tuple[str, tuple[int, int, int], int]]:
    white, grey = (255, 255, 255), (190, 190, 190)
    lines: list[tuple[str, tuple[int, int, int], int]] = [("BONE AGE (AI)", white, 34)]
    if content.outcome is Outcome.REJECTED:
        lines += [("NOT ASSESSED", (255, 90, 90), 30), (content.reason or "", white, 24)]
        lines += [(text, grey, 20) for text in _wrap(content.reason_text or "", 44)]
    else:
        ba = content.bone_age_months or 0.0
        lines.append((f"{ba:.1f} months ({ba / 12:.1f} y)", white, 30))
        if content.interval_95:
            low, high = content.interval_95
            lines.append((f"95% interval {low:.0f}-{high:.0f} months", grey, 22))
        chrono, sds = content.chronological_age_months, content.sds
        lines.append((f"Chronological age {chrono:.1f} months", white, 22) if chrono is not None
                     else ("Chronological age unknown", grey, 22))
        if content.difference_months is not None:
            lines.append((f"Difference {content.difference_months:+.1f} months", white, 22))
        lines.append((f"SDS {sds:+.2f} (Greulich-Pyle): {content.classification}", white, 22)
                     if sds is not None else ("SDS not computed", grey, 22))
        lines.append((f"Stage: {content.stage}", white, 22))
        if content.confidence:
            lines.append((f"Confidence: {content.confidence}", white, 22))
        for code, _ in content.flags:
            lines.append((f"Flag: {code}", WARNING_COLOUR, 20))
    lines.append((f"Model: {content.algorithm_name} {content.algorithm_version}", grey, 20))
    if content.warning:
        lines += [(text, WARNING_COLOUR, 20) for text in _wrap(content.warning, 44)]
    return lines


def _draw_panel(draw: ImageDraw.ImageDraw, left: int, content: ReportContent) -> None:
    top = 30
    for text, colour, size in _panel_lines(content):
        draw.text((left, top), text, fill=colour, font=_font(size))
        top += int(size * 1.5)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return lines + ([current] if current else [])


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour_map(values: np.ndarray) -> np.ndarray:
    """A jet-like map: blue (cold) through green and yellow to red (hot)."""
    v = np.clip(values, 0, 1)[:, :, None]
    red = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.concatenate([red, green, blue], axis=2) * 255
