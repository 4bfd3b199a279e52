"""Test-time augmentation: the bone age averaged over a few small, fixed moves of the input.

Views are small rotations and shifts of the network input, never a flip (a flipped left
hand is a right hand). The views are fixed, not random, so a result is reproducible.
"""

from __future__ import annotations

import math

import torch

from models.augment import affine_batch

# (degrees, shift x, shift y); the first is the plain input.
VIEWS = ((0.0, 0.0, 0.0), (5.0, 0.0, 0.0), (-5.0, 0.0, 0.0), (0.0, 0.04, 0.0),
         (0.0, 0.0, 0.04), (5.0, -0.04, 0.0), (-5.0, 0.0, -0.04))


def views_of(batch: torch.Tensor, count: int) -> torch.Tensor:
    """(B, 1, S, S) -> (count*B, 1, S, S): the first `count` VIEWS of every image."""
    n = batch.shape[0]
    out = []
    for degrees, dx, dy in VIEWS[:count]:
        angle = torch.full((n,), math.radians(degrees))
        shift = torch.tensor([[dx, dy]]).expand(n, 2)
        out.append(affine_batch(batch, angle, torch.ones(n), shift).clamp(0, 1))
    return torch.cat(out)
