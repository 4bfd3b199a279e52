"""Where the real images of `../shared/data` lie, and the fixed split's parts drawn from them.

Tests that use real images skip only when `../shared` is absent (a checkout without it);
CI runs with it beside the clone, so there they always run.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RSNA_299 = SHARED_DATA / "rsna-299"
REAL_HANDS_DEV = SHARED_DATA / "real-hands-dev"

needs_rsna = pytest.mark.skipif(not (RSNA_299 / "labels.csv").is_file(),
                                reason="../shared/data/rsna-299 is absent")
needs_dev_hands = pytest.mark.skipif(not REAL_HANDS_DEV.is_dir(),
                                     reason="../shared/data/real-hands-dev is absent")


@functools.cache
def fixed_split(recorded_json: str):  # type: ignore[no-untyped-def]
    """The split a model card records, re-drawn from the RSNA set (digests checked)."""
    import json

    from models.datasets import rsna_samples
    from models.splits import split_from_card

    samples = rsna_samples(RSNA_299, RSNA_299 / "labels.csv")
    return split_from_card(samples, json.loads(recorded_json))
