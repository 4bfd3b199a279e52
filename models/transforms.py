"""One MONAI Compose for training and inference, so the two can never drift apart.

Input: a 2-D float32 array in [0, 1] with bone bright (the pipeline's Radiograph pixels).
Output: a (1, S, S) tensor in [0, 1]. Training adds rotation, affine jitter, contrast and noise;
never a left-right flip (a flipped left hand is a right hand, and bone-age atlases read the
left).

Two geometries bring a rectangle to the square input, and a model is trained with one of them
(its card says which): `pad` keeps the aspect ratio and pads with dark background; `squash`
resizes each side on its own. The RSNA images at hand were squashed to 299 x 299 before we got
them, so weights trained on them must see a full-size DICOM squashed the same way, or every hand
at inference is wider than any hand the network learned from. `squash299` goes one step
further and repeats the copy's own step: a larger image is first squashed to 299 x 299 with
PIL's bilinear filter, as the copy's makers did, so a full-size DICOM reaches the network by
the same resampling chain as the training PNG (for a 299-px image the two are identical).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

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
from PIL import Image

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

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        r0, r1, c0, c1 = crop_box(np.asarray(image[0], dtype=np.float32))
        return image[:, r0:r1, c0:c1]


def crop_box(pixels: np.ndarray, margin: float = 0.05) -> tuple[int, int, int, int]:
    """The region HandCrop keeps: the hand's box with a margin, or the whole image."""
    h, w = pixels.shape
    box = hand_box(pixels)
    if box is None:
        return 0, h, 0, w
    r0, r1, c0, c1 = box
    pad_r, pad_c = int(margin * (r1 - r0)), int(margin * (c1 - c0))
    return max(r0 - pad_r, 0), min(r1 + pad_r, h), max(c0 - pad_c, 0), min(c1 + pad_c, w)


def hand_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1) of the hand in full-resolution pixels, or None."""
    h, w = pixels.shape
    step_r, step_c = max(h // _CROP_GRID, 1), max(w // _CROP_GRID, 1)
    small = pixels[::step_r, ::step_c]
    component = largest_component(small > otsu_threshold(small))
    if component is None:
        return None
    rows, cols = np.nonzero(component)
    return (rows.min() * step_r, (rows.max() + 1) * step_r,
            cols.min() * step_c, (cols.max() + 1) * step_c)


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 4-connected component of a foreground mask that is anatomy: not a
    collimation frame (touching three or more borders) and at least 2% of the image."""
    mask = mask.copy()
    # Shutter (collimation) edges are bright from side to side: clear those rows and columns
    # so the forearm, which runs into them, is not merged with the frame.
    mask[mask.mean(axis=1) > 0.95, :] = False
    mask[:, mask.mean(axis=0) > 0.95] = False
    labels, sizes, borders = _components(mask)
    best = None
    for label, size in enumerate(sizes):
        if borders[label] >= 3 or size < 0.02 * mask.size:
            continue
        if best is None or size > sizes[best]:
            best = label
    return None if best is None else labels == best


def otsu_threshold(values: np.ndarray) -> float:
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


class Shrink(Transform):
    """Block-average a large image by an integer factor so that its shorter side stays at least
    twice the network input: a 2560-px detector image costs what a 512-px one does in the
    percentile window, the crop and the anti-aliased resize, and loses nothing they keep."""

    def __init__(self, input_size: int) -> None:
        self.input_size = input_size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        factor = shrink_factor(np.shape(image), self.input_size)
        if factor == 1:
            return np.asarray(image, dtype=np.float32)
        h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        blocks = np.asarray(image[:h, :w], dtype=np.float32)
        return blocks.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def shrink_factor(shape: tuple[int, ...], input_size: int) -> int:
    return max(1, min(shape[0], shape[1]) // (2 * input_size))


class SquashTo(Transform):
    """Resize a 2-D image to `size` x `size` with PIL's bilinear filter (antialiased when it
    shrinks), in floating point: the RSNA copy's step, without its 8-bit rounding."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        if image.shape == (self.size, self.size):
            return image
        resized = Image.fromarray(image, mode="F").resize((self.size, self.size),
                                                          Image.Resampling.BILINEAR)
        return np.array(resized, dtype=np.float32)


RSNA_COPY_SIZE = 299


def _presquash(geometry: str) -> list:
    return [SquashTo(RSNA_COPY_SIZE)] if geometry == "squash299" else []


def _window_steps(input_size: int, geometry: str = "pad") -> list:
    return [
        *_presquash(geometry),
        Shrink(input_size),
        EnsureChannelFirst(channel_dim="no_channel"),
        ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True),  # robust window
    ]


GEOMETRIES = ("pad", "squash", "squash299")


def _square_steps(input_size: int, geometry: str = "pad") -> list:
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; known: {', '.join(GEOMETRIES)}")
    resize = Resize((input_size, input_size), anti_aliasing=True)
    return [PadToSquare(), resize] if geometry == "pad" else [resize]  # squash, squash299


def _clamp(image: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(image).float().clamp(0.0, 1.0)


def augmentations(input_size: int) -> list:
    """The training-only random steps, applied to the square (1, S, S) input. Rotations and
    shifts stay small (a PA hand is placed roughly upright); never a flip."""
    return [
        RandRotate(range_x=np.deg2rad(15), prob=0.8, padding_mode="zeros"),
        RandAffine(prob=0.8, scale_range=(0.1, 0.1),
                   translate_range=(0.05 * input_size, 0.05 * input_size),
                   padding_mode="zeros"),
        RandAdjustContrast(prob=0.5, gamma=(0.7, 1.4)),
        RandGaussianNoise(prob=0.5, std=0.02),
        Lambda(_clamp),
    ]


def make_transforms(input_size: int, *, train: bool, hand_crop: bool = False,
                    geometry: str = "pad") -> Compose:
    steps: list = _window_steps(input_size, geometry)
    if hand_crop:
        steps.append(HandCrop())
    steps += _square_steps(input_size, geometry)
    steps += augmentations(input_size) if train else [Lambda(_clamp)]
    return Compose(steps)


@dataclass(frozen=True)
class Geometry:
    """Where the network's square input came from: the source image's shape and the region of
    it (the whole image, or the hand crop) that was padded to a square and resized."""

    source_shape: tuple[int, int]
    box: tuple[int, int, int, int]  # row0, row1, col0, col1, in the shrunk image
    factor: int = 1  # the Shrink factor: shrunk pixel (r, c) covers source (r*f, c*f)
    squash: bool = False  # resized to the square without padding (see the module docstring)
    presquash: tuple[float, float] = (1.0, 1.0)  # source pixels per pixel of the squash299 step


class InferenceTransform:
    """The inference Compose, split at the crop so the crop box is known: heatmaps computed on
    the network input can then be mapped back onto the source image (`to_source`)."""

    def __init__(self, input_size: int, hand_crop: bool = False, geometry: str = "pad") -> None:
        self.hand_crop = hand_crop
        self.input_size = input_size
        self.geometry = geometry
        self.window = Compose(_window_steps(input_size, geometry))
        self.square = Compose([*_square_steps(input_size, geometry), Lambda(_clamp)])

    def __call__(self, image: np.ndarray) -> tuple[torch.Tensor, Geometry]:
        windowed = torch.as_tensor(self.window(image))
        h, w = windowed.shape[1:]
        box = crop_box(np.asarray(windowed[0], np.float32)) if self.hand_crop else (0, h, 0, w)
        r0, r1, c0, c1 = box
        source = (int(image.shape[0]), int(image.shape[1]))
        presquash = (1.0, 1.0)
        if self.geometry == "squash299":
            presquash = (source[0] / RSNA_COPY_SIZE, source[1] / RSNA_COPY_SIZE)
            shape: tuple[int, ...] = (RSNA_COPY_SIZE, RSNA_COPY_SIZE)
        else:
            shape = source
        geometry = Geometry(source, box, shrink_factor(shape, self.input_size),
                            squash=self.geometry != "pad", presquash=presquash)
        return self.square(windowed[:, r0:r1, c0:c1]), geometry


def to_source(heatmap: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A square map over the network input -> the source image's geometry (zero outside the
    crop), undoing the resize and the padding."""
    fr, fc = (geometry.factor * scale for scale in geometry.presquash)
    b0, b1, b2, b3 = geometry.box
    r0, r1, c0, c1 = round(b0 * fr), round(b1 * fr), round(b2 * fc), round(b3 * fc)
    h, w = r1 - r0, c1 - c0
    m = max(h, w)
    size = (h, w) if geometry.squash else (m, m)
    square = torch.nn.functional.interpolate(
        torch.as_tensor(heatmap, dtype=torch.float32)[None, None], size=size,
        mode="bilinear", align_corners=False,
    )[0, 0]
    top, left = (0, 0) if geometry.squash else ((m - h) // 2, (m - w) // 2)
    out = np.zeros(geometry.source_shape, np.float32)
    rows, cols = min(h, out.shape[0] - r0), min(w, out.shape[1] - c0)
    out[r0:r0 + rows, c0:c0 + cols] = square[top:top + rows, left:left + cols].numpy()
    return out
