"""Training augmentations applied to a whole batch at once.

The same random steps as `transforms.augmentations` describes (rotation, scale, shift,
gamma, noise; never a flip), drawn per image but applied with one `affine_grid` /
`grid_sample` call for the batch: per-sample MONAI transforms cost 13 ms an image on a CPU
core, half of a MobileNet training step, where the batched form costs a fraction of a
millisecond. Inference never augments; only training (and the hand check's training) call
this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random steps (each drawn uniformly per image)."""

    rotate_degrees: float = 15.0
    scale: float = 0.10  # zoom in or out by up to this fraction
    shift: float = 0.05  # of the image size, each axis
    gamma: float = 0.35  # log-uniform gamma in [exp(-g), exp(g)]: 0.70-1.42 for 0.35
    noise_std: float = 0.02
    probability: float = 0.8  # of the geometric steps; gamma and noise at half of it


def augment_batch(batch: torch.Tensor, generator: torch.Generator,
                  spec: Augmentation = Augmentation()) -> torch.Tensor:
    """(B, 1, S, S) in [0, 1] -> the same shape, randomly moved and re-exposed."""
    n = batch.shape[0]

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    moved_mask = (uniform(n) < spec.probability).float()
    angle = (uniform(n) - 0.5) * 2 * np.deg2rad(spec.rotate_degrees) * moved_mask
    scale = 1.0 + (uniform(n) - 0.5) * 2 * spec.scale * moved_mask
    shift = (uniform(n, 2) - 0.5) * 2 * spec.shift * 2 * moved_mask[:, None]
    out = affine_batch(batch, angle, scale, shift)
    half = spec.probability / 2
    gamma = torch.exp((uniform(n) - 0.5) * 2 * spec.gamma)
    gamma = torch.where(uniform(n) < half, gamma, torch.ones_like(gamma))
    out = out.clamp(0, 1) ** gamma[:, None, None, None]
    noisy = (uniform(n) < half).float()[:, None, None, None]
    noise = torch.randn(out.shape, generator=generator) * spec.noise_std
    return (out + noise * noisy).clamp(0, 1)


def affine_batch(batch: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor,
                 shift: torch.Tensor) -> torch.Tensor:
    """Rotate (radians), zoom and shift (fractions of the half-size, as affine_grid counts)
    each image of a (B, 1, S, S) batch, filling with dark background."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch.float(), grid, padding_mode="zeros", align_corners=False)
