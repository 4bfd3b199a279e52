"""Network inputs prepared once and kept on disk, so that an epoch costs only the network.

The deterministic part of the inference transform (window, optional hand crop, square
resize) gives the same tensor for an image in every epoch; on two CPU cores, redoing it each
time (a JPEG decode, a percentile window and, with the crop, a connected-component search)
costs a third of a training step. The cache stores exactly what `InferenceTransform` returns,
as 8 bits (the sources are 8-bit images), keyed by the ids and the transform's settings, so
training sees the inputs that `predict` and `serve` compute, and only the random
augmentations run per epoch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models.datasets import Sample
from models.transforms import InferenceTransform

CACHE_FORMAT = 1


def cache_key(samples: Sequence[Sample], transform: InferenceTransform) -> str:
    settings = {"format": CACHE_FORMAT, "size": transform.input_size,
                "hand_crop": transform.hand_crop, "geometry": transform.geometry,
                "ids": [str(s.id) for s in samples]}
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]


def prepared_inputs(samples: Sequence[Sample], transform: InferenceTransform,
                    cache_dir: Path | None,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(N, S, S) uint8: each sample's network input, from `cache_dir` when it was built
    before, else computed (and saved there, written whole then renamed)."""
    path = None
    if cache_dir is not None:
        path = cache_dir / f"inputs-{cache_key(samples, transform)}.npy"
        if path.is_file():
            return np.load(path, mmap_mode="r")
    size = transform.input_size
    out = np.empty((len(samples), size, size), dtype=np.uint8)
    for index, sample in enumerate(samples):
        tensor, _ = transform(sample.pixels())
        out[index] = np.rint(tensor[0].numpy() * 255.0).astype(np.uint8)
        if progress and (index + 1) % 256 == 0:
            progress(index + 1, len(samples))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, out)
        partial.rename(path)
    return out
