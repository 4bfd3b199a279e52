"""The shipped research model and the gates, on real radiographs from `../shared/data`.

Regression guards, not timed tests: the shipped weights must still score what their card
says on the fixed validation split, full-size DICOM and squashed PNG must meet the same
geometry, and the gates must pass held-out real hands while every real negative is refused.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from dicom_io.dx import HandRadiograph, build_dx
from dicom_io.pixels import read_radiograph
from models.card import load_model_dir
from models.datasets import read_image_file
from models.inference import Predictor
from models.shipped import DEFAULT_MODEL_DIR, HAND_CHECK_DIR
from models.splits import stratified_split
from service.gates import GateThresholds, Reason
from service.gates.anatomy import anatomy_gate
from service.gates.image import image_gates
from tests.realdata import REAL_HANDS_DEV, fixed_split, needs_dev_hands, needs_rsna

NEGATIVES = ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG3_UNCR.dcm", "RG3_J2KR.dcm", "CT_small.dcm",
             "MR_small.dcm", "US1_UNCR.dcm")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_dir(DEFAULT_MODEL_DIR)


def test_the_shipped_default_is_a_research_model_and_says_so():
    _, card = load_model_dir(DEFAULT_MODEL_DIR)
    assert card.synthetic is False
    assert "research model" in card.warning and "NOT FOR DIAGNOSTIC USE" in card.warning
    assert "RSNA" in card.training_data["licence"]
    assert card.training_data["geometry"] == "squash299"


@needs_rsna
def test_shipped_weights_score_their_card_figure_on_the_fixed_validation_split(predictor):
    guard = predictor.card.metrics["regression_guard"]
    split = fixed_split(json.dumps(predictor.card.training_data["split"], sort_keys=True))
    samples = stratified_split(split.val, guard["count"], 0, guard["seed"]).val
    predicted = np.concatenate([
        [p.bone_age_months for p in predictor.predict([s.pixels() for s in chunk],
                                                       [s.male for s in chunk])]
        for chunk in (samples[i:i + 32] for i in range(0, len(samples), 32))])
    mae = float(np.abs(predicted - np.array([s.age_months for s in samples])).mean())
    assert mae == pytest.approx(guard["mae_months"], rel=0.10), mae


def squashed_png(pixels: np.ndarray, path: Path) -> Path:
    """What the RSNA 299-px copy did to each radiograph: squash to a square, 8 bits."""
    image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8))
    image.resize((299, 299), Image.Resampling.BILINEAR).save(path)
    return path


def full_size_dicom(pixels: np.ndarray, path: Path) -> Path:
    stored = np.rint(pixels * 4095).astype(np.uint16)
    ds = build_dx(HandRadiograph(stored, 12, "MONOCHROME2", 0.1, "GEOM-1", "Geometry^Test",
                                 "M", date(2015, 1, 1), date(2026, 1, 1)))
    # The same pixels as the PNG: no VOI window of the modality's narrowing them first.
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(path, enforce_file_format=True)
    return path


@needs_dev_hands
def test_full_size_dicom_and_its_squashed_png_agree(predictor, tmp_path):
    """Within the issue's 2 months, every development hand. The card's geometry, squash299,
    brings a full-size image to 299 x 299 with PIL's bilinear filter first, as the RSNA copy
    was made, so both paths share one resampling chain and differ only by the PNG's 8-bit
    rounding. (Squashing straight from full size gave up to 2.2 months on the stage-1
    weights.)"""
    differences = {}
    for source in sorted(REAL_HANDS_DEV.glob("*.png")):
        pixels = read_image_file(source)
        as_dicom = read_radiograph(full_size_dicom(pixels, tmp_path / "hand.dcm")).pixels
        as_png = read_image_file(squashed_png(pixels, tmp_path / "hand.png"))
        assert as_dicom.shape == pixels.shape and as_png.shape == (299, 299)
        full, small = predictor.predict([as_dicom, as_png], [True, True])
        differences[source.name] = abs(full.bone_age_months - small.bone_age_months)
    assert len(differences) == 10 and max(differences.values()) <= 2.0, differences


@pytest.fixture(scope="module")
def hand_check():
    from models.handcheck import HandCheck

    return HandCheck.from_dir(HAND_CHECK_DIR)


def rejections(pixels: np.ndarray, hand_check, limits: GateThresholds) -> list[str]:
    gates = [*image_gates(pixels, None, limits), anatomy_gate(pixels, hand_check, limits)]
    return [g.code for g in gates if not g.passed]


@needs_rsna
def test_gates_pass_held_out_real_hands(predictor, hand_check):
    """500 real hands from the validation part: never trained on by the hand check, never
    used to set a threshold. At most 1% rejected (the issue's aim, BoneXpert rejects 0.4%)."""
    limits = GateThresholds()
    split = fixed_split(json.dumps(predictor.card.training_data["split"], sort_keys=True))
    hands = stratified_split(split.val, 500, 0, 1).val
    rejected = {s.id: codes for s in hands if (codes := rejections(s.pixels(), hand_check,
                                                                    limits))}
    assert len(rejected) <= 5, rejected


@needs_dev_hands
def test_gates_pass_full_size_real_hands(hand_check):
    for path in sorted(REAL_HANDS_DEV.glob("*.png")):
        assert rejections(read_image_file(path), hand_check, GateThresholds()) == [], path.name


@pytest.mark.parametrize("name", NEGATIVES)
def test_every_real_negative_is_refused(hand_check, name):
    pixels = read_radiograph(Path(get_testdata_file(name))).pixels
    assert Reason.NOT_A_HAND in rejections(pixels, hand_check, GateThresholds())
