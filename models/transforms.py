"""One MONAI Compose for training and inference, so the two can never drift apart.

Input: a 2-D float32 array in [0, 1] with bone bright (the pipeline's Radiograph pixels).
Output: a (1, S, S) tensor in [0, 1]. Training adds rotation, affine jitter, contrast and noise;
never a left-right flip (a flipped left hand is a right hand, and bone-age atlases read the
left).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from monai.transforms import (
    Compose,
    EnsureChannelFirst,
    Lambda,
    RandAdjustContrast,
    RandAffine,
    RandGaussianNoise,
    RandRotate,
    Resize,
    ScaleIntensityRangePercentiles,
    Transform,
)

_CROP_GRID = 128  # hand crop works on a downsampled mask


class PadToSquare(Transform):
    """Pad (C, H, W) with zeros (dark background) to (C, M, M), M = max(H, W), centred."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = image.shape
        m = max(h, w)
        top, left = (m - h) // 2, (m - w) // 2
        return torch.nn.functional.pad(image, (left, m - w - left, top, m - h - top))


class HandCrop(Transform):
    """Crop to the largest bright connected component (the hand and forearm), with a margin.

    Components touching three or more image borders are collimation frames, not anatomy, and
    are ignored. If nothing plausible is found the image is returned whole.
    """

    def __init__(self, margin: float = 0.05) -> None:
        self.margin = margin

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        box = hand_box(np.asarray(image[0], dtype=np.float32))
        if box is None:
            return image
        r0, r1, c0, c1 = box
        h, w = image.shape[1:]
        pad_r, pad_c = int(self.margin * (r1 - r0)), int(self.margin * (c1 - c0))
        rows = slice(max(r0 - pad_r, 0), min(r1 + pad_r, h))
        cols = slice(max(c0 - pad_c, 0), min(c1 + pad_c, w))
        return image[:, rows, cols]


def hand_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1) of the hand in full-resolution pixels, or None."""
    h, w = pixels.shape
    step_r, step_c = max(h // _CROP_GRID, 1), max(w // _CROP_GRID, 1)
    small = pixels[::step_r, ::step_c]
    mask = small > _otsu(small)
    # Shutter (collimation) edges are bright from side to side: clear those rows and columns
    # so the forearm, which runs into them, is not merged with the frame.
    mask[mask.mean(axis=1) > 0.95, :] = False
    mask[:, mask.mean(axis=0) > 0.95] = False
    labels, sizes, borders = _components(mask)
    best = None
    for label, size in enumerate(sizes):
        if borders[label] >= 3 or size < 0.02 * small.size:
            continue
        if best is None or size > sizes[best]:
            best = label
    if best is None:
        return None
    rows, cols = np.nonzero(labels == best)
    return (rows.min() * step_r, (rows.max() + 1) * step_r,
            cols.min() * step_c, (cols.max() + 1) * step_c)


def _otsu(values: np.ndarray) -> float:
    histogram, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
    weights = histogram.astype(np.float64) / max(histogram.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(weights)
    m0 = np.cumsum(weights * centres)
    total = m0[-1]
    between = (total * w0 - m0) ** 2 / np.maximum(w0 * (1 - w0), 1e-12)
    return float(centres[int(np.argmax(between))])


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    """4-connected labelling by breadth-first search; also how many borders each touches."""
    h, w = mask.shape
    labels = np.full(mask.shape, -1, dtype=np.int32)
    sizes: list[int] = []
    borders: list[int] = []
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start] >= 0:
            continue
        label = len(sizes)
        labels[start] = label
        queue = deque([start])
        size, touched = 0, set()
        while queue:
            r, c = queue.popleft()
            size += 1
            if r == 0:
                touched.add("top")
            if r == h - 1:
                touched.add("bottom")
            if c == 0:
                touched.add("left")
            if c == w - 1:
                touched.add("right")
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= nr < h and 0 <= nc < w and mask[nr, nc] and labels[nr, nc] < 0:
                    labels[nr, nc] = label
                    queue.append((nr, nc))
        sizes.append(size)
        borders.append(len(touched))
    return labels, sizes, borders


def make_transforms(input_size: int, *, train: bool, hand_crop: bool = False) -> Compose:
    steps: list = [
        EnsureChannelFirst(channel_dim="no_channel"),
        ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True),  # robust window
    ]
    if hand_crop:
        steps.append(HandCrop())
    steps += [PadToSquare(), Resize((input_size, input_size), anti_aliasing=True)]
    if train:
        steps += [
            RandRotate(range_x=np.deg2rad(15), prob=0.8, padding_mode="zeros"),
            RandAffine(prob=0.8, scale_range=(0.1, 0.1),
                       translate_range=(0.05 * input_size, 0.05 * input_size),
                       padding_mode="zeros"),
            RandAdjustContrast(prob=0.5, gamma=(0.7, 1.4)),
            RandGaussianNoise(prob=0.5, std=0.02),
        ]
    steps.append(Lambda(lambda image: torch.as_tensor(image).float().clamp(0.0, 1.0)))
    return Compose(steps)
