"""Image gates: the six layers of the seed EfficientNet paper, on the decoded pixels.

They run on display-ready pixels (bone bright, in [0, 1]) downsampled to about 512 px, so
they cost milliseconds whatever the detector size. In order: colour saturation (photographs),
intensity variance (blank or corrupt), brightness envelope (over- or underexposed), the
intensity histogram's peak (flat histograms of synthetic gradients), dynamic range P95-P5
(low-contrast copies), and edge density outside the band of radiographs (photographs of
scenes are busier, featureless images quieter).
"""

from __future__ import annotations

import numpy as np

from service.gates import GateResult, GateThresholds, Reason

WORK_PX = 512
HISTOGRAM_BINS = 64
EDGE_STEP = 0.08  # a neighbour-to-neighbour step this large counts as an edge


def working_copy(pixels: np.ndarray) -> np.ndarray:
    step = max(max(pixels.shape) // WORK_PX, 1)
    return np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32)


def histogram_peak(small: np.ndarray) -> float:
    """Largest histogram bin over the mean bin: radiographs have a peaked distribution (the
    background, the soft tissue), a synthetic ramp a flat one (about 1)."""
    histogram, _ = np.histogram(small, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return float(histogram.max() / max(histogram.mean(), 1e-9))


def edge_density(small: np.ndarray) -> float:
    """Fraction of pixels whose step to the right or below neighbour exceeds EDGE_STEP, after
    a 2x2 box average that takes out pixel noise."""
    h, w = (small.shape[0] // 2) * 2, (small.shape[1] // 2) * 2
    if h < 4 or w < 4:
        return 0.0
    box = small[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    dx = np.abs(np.diff(box, axis=1))[:-1, :]
    dy = np.abs(np.diff(box, axis=0))[:, :-1]
    return float((np.maximum(dx, dy) > EDGE_STEP).mean())


def image_gates(pixels: np.ndarray, color_saturation: float | None,
                limits: GateThresholds) -> list[GateResult]:
    small = working_copy(pixels)
    saturation = color_saturation or 0.0
    std = float(small.std())
    mean = float(small.mean())
    peak = histogram_peak(small)
    p5, p95 = np.percentile(small, (5, 95))
    dynamic = float(p95 - p5)
    edges = edge_density(small)

    def gate(name: str, passed: bool, code: Reason, value: float, threshold: str) -> GateResult:
        return GateResult(name, passed, None if passed else code, round(value, 4), threshold)

    return [
        gate("color_saturation", saturation <= limits.max_color_saturation, Reason.COLOR_PHOTO,
             saturation, f"<= {limits.max_color_saturation}"),
        gate("intensity_std", std >= limits.min_intensity_std, Reason.BLANK_IMAGE, std,
             f">= {limits.min_intensity_std}"),
        gate("mean_brightness",
             limits.min_mean_brightness <= mean <= limits.max_mean_brightness,
             Reason.OVEREXPOSED, mean,
             f"{limits.min_mean_brightness}-{limits.max_mean_brightness}"),
        gate("histogram_peak", peak >= limits.min_histogram_peak, Reason.SYNTHETIC_PATTERN,
             peak, f">= {limits.min_histogram_peak}"),
        gate("dynamic_range", dynamic >= limits.min_dynamic_range, Reason.LOW_CONTRAST,
             dynamic, f">= {limits.min_dynamic_range}"),
        gate("edge_density", limits.min_edge_density <= edges <= limits.max_edge_density,
             Reason.EDGE_DENSITY, edges, f"{limits.min_edge_density}-{limits.max_edge_density}"),
    ]
