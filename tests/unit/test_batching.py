"""A batch of instances through one forward pass gives each the result it gets alone (what
a GPU worker relies on when it takes the waiting instances along)."""

from __future__ import annotations

import pytest

from models.shipped import PHANTOM_MODEL_DIR
from service.pipeline import Assessor
from tests.factory import phantom_file, write_image


def test_assess_paths_equals_one_at_a_time(tmp_path):
    paths = [phantom_file(tmp_path, age=age, seed=seed, size=512)
             for seed, age in ((1, 50.0), (2, 150.0))]
    paths.append(write_image(tmp_path / "ramp.dcm", seed=3) and tmp_path / "ramp.dcm")
    (tmp_path / "broken.dcm").write_bytes(b"DICM but not really")
    paths.append(tmp_path / "broken.dcm")
    assessor = Assessor.load(PHANTOM_MODEL_DIR)
    alone = [assessor.assess_path(path) for path in paths]
    together = assessor.assess_paths(paths)
    assert [a.status for a in together] == [a.status for a in alone]
    assert [a.reason for a in together] == [a.reason for a in alone]
    assert [a.reason for a in together[2:]] == ["SYNTHETIC_PATTERN", "DECODE_FAILED"]
    for one, batched in zip(alone[:2], together[:2], strict=True):
        assert batched.prediction.bone_age_months == pytest.approx(
            one.prediction.bone_age_months, abs=1e-3)
        assert batched.prediction.interval_95 == pytest.approx(one.prediction.interval_95,
                                                               abs=1e-3)
        assert batched.header is not None and batched.gates == one.gates
