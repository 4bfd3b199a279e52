"""Test-time augmentation: the bone age averaged over a few small, fixed moves of the input.

Views are small rotations and shifts of the network input, never a flip (a flipped left
hand is a right hand). The views are fixed, not random, so a result is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
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


def predict_ages(predictor, images: Sequence[np.ndarray], males: Sequence[bool],  # type: ignore[no-untyped-def]
                 views: int, batch_size: int = 32) -> np.ndarray:
    """Mean predicted age over `views` views for each image (views=1: no augmentation)."""
    ages = []
    for start in range(0, len(images), batch_size):
        chunk = [predictor.transform(image)[0] for image in images[start:start + batch_size]]
        batch = torch.stack(chunk)
        sex = torch.tensor([1.0 if m else 0.0 for m in males[start:start + batch_size]])
        moved = views_of(batch, views).contiguous(memory_format=predictor.memory_format)
        with torch.inference_mode():
            out = predictor.net(moved.to(predictor.device), sex.repeat(views).to(predictor.device))
        ages.append(out["age"].float().cpu().view(views, -1).mean(0).numpy())
    return np.concatenate(ages)
