"""Image gates: the six layers of the seed EfficientNet paper, on the decoded pixels.

They run on display-ready pixels (bone bright, in [0, 1]) downsampled to about 512 px, so
they cost milliseconds whatever the detector size. In order: colour saturation (photographs),
intensity variance (blank or corrupt), brightness envelope (over- or underexposed), the
intensity histogram's peak (flat histograms of synthetic gradients), contrast against noise
(low-contrast copies), and edge density outside the band of radiographs (photographs of
scenes are busier, featureless images quieter).

Contrast is judged as a reader sees it. The seed's raw P95-P5 rejected one real hand in ten:
real radiographs are often dim, with a narrow range that the viewer's window stretches. A
window stretches the noise as much as the anatomy, so what a reader can or cannot see is the
anatomy's spread against the noise: (P95 - P5) / sigma, with sigma the robust noise estimate
of neighbouring pixels. It is unchanged by any linear window. The thresholds and where each
came from are in `GateThresholds`; `bench/gates.py` measures them on real images.
"""

from __future__ import annotations

import numpy as np

from service.gates import GateResult, GateThresholds, Reason

WORK_PX = 512
HISTOGRAM_BINS = 64
EDGE_STEP = 0.08  # a neighbour-to-neighbour step this large counts as an edge
QUANTISATION_SIGMA = 1.0 / 255.0 / np.sqrt(12.0)  # noise of rounding to 8 bits


def working_copy(pixels: np.ndarray) -> np.ndarray:
    step = max(max(pixels.shape) // WORK_PX, 1)
    return np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32)


def histogram_peak(small: np.ndarray) -> float:
    """Largest histogram bin over the mean bin: radiographs have a peaked distribution (the
    background, the soft tissue), a synthetic ramp a flat one (about 1)."""
    histogram, _ = np.histogram(small, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return float(histogram.max() / max(histogram.mean(), 1e-9))


def contrast_to_noise(small: np.ndarray) -> float:
    """(P95 - P5) over the noise sigma, estimated as the median absolute difference of
    horizontal neighbours (MAD / 0.6745, over sqrt 2 for a difference of two), floored at the
    noise of 8-bit quantisation so that a clean 8-bit image does not divide by zero."""
    p5, p95 = np.percentile(small, (5, 95))
    steps = np.abs(np.diff(small, axis=1))
    sigma = max(float(np.median(steps)) / (0.6745 * np.sqrt(2.0)), QUANTISATION_SIGMA)
    return float((p95 - p5) / sigma)


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
    contrast = contrast_to_noise(small)
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
        gate("contrast_to_noise", contrast >= limits.min_contrast_to_noise,
             Reason.LOW_CONTRAST, contrast, f">= {limits.min_contrast_to_noise}"),
        gate("edge_density", limits.min_edge_density <= edges <= limits.max_edge_density,
             Reason.EDGE_DENSITY, edges, f"{limits.min_edge_density}-{limits.max_edge_density}"),
    ]
