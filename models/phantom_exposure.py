"""The imaging chain of a phantom: from the drawn tissue to what a detector and its
processing would show (blur, exposure curve, gamma, shutters, noise, a lead marker).

Kept apart from the drawing of the hand (`models.phantom`) because it is the part that makes
a phantom look acquired rather than drawn, and the part tests vary with `augment`.
"""

from __future__ import annotations

import math

import numpy as np


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur as a weighted sum of shifted copies (small kernels, float32)."""
    radius = max(int(2.5 * sigma + 0.5), 1)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-(offsets**2) / (2 * sigma**2)).astype(np.float32)
    weights /= weights.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)],
                        mode="edge")
        out = np.zeros_like(image)
        n = image.shape[axis]
        for offset, weight in zip(offsets, weights, strict=True):
            start = offset + radius
            window = padded[start:start + n] if axis == 0 else padded[:, start:start + n]
            out += weight * window
        image = out
    return image


def _upsample2(image: np.ndarray) -> np.ndarray:
    """Twice the size, bilinear-like: repeat, then a [1, 2, 1]/4 smoothing per axis."""
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    for axis in (0, 1):
        padded = np.pad(big, [(1, 1) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = big.shape[axis]
        if axis == 0:
            big = 0.25 * padded[:n] + 0.5 * padded[1:n + 1] + 0.25 * padded[2:]
        else:
            big = 0.25 * padded[:, :n] + 0.5 * padded[:, 1:n + 1] + 0.25 * padded[:, 2:]
    return big.astype(np.float32)


def expose(soft: np.ndarray, bone: np.ndarray, rng: np.random.Generator, augment: bool
           ) -> np.ndarray:
    """Soft-tissue and bone path lengths to a processed, display-ready image in [0, 1], bone
    bright, at twice the canvas resolution."""
    mu_soft = 0.018 if not augment else rng.uniform(0.014, 0.022)
    mu_bone = 0.10 if not augment else rng.uniform(0.08, 0.12)
    attenuation = mu_soft * soft + mu_bone * bone
    image = (0.12 + 0.88 * (1.0 - np.exp(-attenuation))).astype(np.float32)
    if not augment:
        return np.clip(_upsample2(_blur(image, 0.5)), 0.0, 1.0)
    image = _blur(image, float(rng.uniform(0.35, 0.9)))
    image = np.clip(image, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))
    image = image * np.float32(rng.uniform(0.85, 1.05)) + np.float32(rng.uniform(-0.04, 0.05))
    if rng.random() < 0.6:
        image = _collimate(image, rng)
    image = _upsample2(image)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image += noise * np.float32(rng.uniform(0.004, 0.02))
    _burn_marker(image, rng)
    return np.clip(image, 0.0, 1.0)


def _collimate(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shutter edges: outside a (slightly rotated) rectangle nothing was exposed."""
    size = image.shape[0]
    margin = rng.uniform(0.0, 0.08, size=4) * size
    angle = math.radians(rng.uniform(-4, 4))
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    c = size / 2
    u = (cols - c) * math.cos(angle) + (rows - c) * math.sin(angle) + c
    v = -(cols - c) * math.sin(angle) + (rows - c) * math.cos(angle) + c
    inside = (u > margin[0]) & (u < size - margin[1]) & (v > margin[2]) & (v < size - margin[3])
    level = rng.uniform(0.8, 0.95)
    return np.where(inside, image, np.float32(level)).astype(np.float32)


def _burn_marker(image: np.ndarray, rng: np.random.Generator) -> None:
    """A lead 'L' laterality marker near a top corner."""
    size = image.shape[0]
    h = int(size * 0.05)
    w = int(h * 0.6)
    t = max(int(h * 0.2), 2)
    top = int(size * rng.uniform(0.03, 0.1))
    left = int(size * (rng.uniform(0.03, 0.1) if rng.random() < 0.5 else rng.uniform(0.82, 0.9)))
    image[top:top + h, left:left + t] = 0.97
    image[top + h - t:top + h, left:left + w] = 0.97
