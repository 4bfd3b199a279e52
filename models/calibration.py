"""Fitting a model's 95% interval to held-out truth: what `boneage calibrate` writes into the
card's `calibration` section and `Predictor` applies.

The fit lives beside the network rather than in the command, so a training script, a bench or
a test fits exactly what the service will apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from models.datasets import Sample
from models.heads import conformal_margin, interval_fit
from models.inference import Predictor


def fit_interval(predictor: Predictor, samples: Sequence[Sample], *, batch_size: int = 16,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The split-conformal margin (models.heads.conformal_margin) on `samples`, with the
    coverage and mean width before and after it."""
    chunks = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        chunks.append(predictor.raw_intervals([s.pixels() for s in chunk],
                                              [s.male for s in chunk]))
        if progress:
            progress(start + len(chunk), len(samples))
    bounds = torch.from_numpy(np.concatenate(chunks))
    ages = torch.tensor([s.age_months for s in samples], dtype=bounds.dtype)
    margin = conformal_margin(bounds, ages)
    covered, width = interval_fit(bounds, ages, margin)
    covered_raw, width_raw = interval_fit(bounds, ages)
    return {"interval_margin_months": margin, "method": "split conformal (CQR), 95%",
            "coverage": round(covered, 3), "mean_width_months": round(width, 1),
            "coverage_uncalibrated": round(covered_raw, 3),
            "mean_width_uncalibrated_months": round(width_raw, 1)}
