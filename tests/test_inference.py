"""Model directories (safetensors + card) and the inference API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import build
from models.card import (
    CARD_FILE,
    WEIGHTS_FILE,
    ModelCard,
    ModelDirError,
    load_model_dir,
    save_model_dir,
)
from models.inference import Predictor
from models.phantom import render

# Untrained weights: these tests check plumbing and contracts, not accuracy.
SIZE = 96


def save_untrained(directory, name="boneage-b0"):
    torch.manual_seed(0)
    net = build(name, input_size=SIZE).eval()
    card = ModelCard(name=name, version="0.0.0-test", config={}, synthetic=True,
                     training_data={"description": "untrained (test)"})
    return net, save_model_dir(directory, net, card)


def test_round_trip_gives_identical_outputs(tmp_path):
    net, card = save_untrained(tmp_path / "model")
    loaded, loaded_card = load_model_dir(tmp_path / "model")
    image, sex = torch.rand(3, 1, SIZE, SIZE), torch.tensor([1, 0, 1])
    with torch.no_grad():
        before, after = net(image, sex), loaded(image, sex)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert loaded_card.weights_sha256 == card.weights_sha256 and len(card.weights_sha256) == 64
    assert loaded_card.config["input_size"] == SIZE and loaded_card.synthetic


def test_tampered_or_incomplete_directories_are_refused(tmp_path):
    save_untrained(tmp_path / "model")
    weights = tmp_path / "model" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="sha256"):
        load_model_dir(tmp_path / "model")
    (tmp_path / "model" / CARD_FILE).unlink()
    with pytest.raises(ModelDirError, match="missing"):
        load_model_dir(tmp_path / "model")


def test_predictor_returns_the_prediction_contract(tmp_path):
    save_untrained(tmp_path / "model")
    predictor = Predictor.from_dir(tmp_path / "model")
    images = []
    for seed in range(2):
        phantom = render(100, True, seed, size=256)
        pixels = phantom.pixels.astype(np.float32) / 4095
        images.append(1 - pixels if phantom.photometric == "MONOCHROME1" else pixels)
    predictions = predictor.predict(images, [True, False])
    assert len(predictions) == 2
    for prediction in predictions:
        assert 0.0 <= prediction.bone_age_months <= 240.0
        low, high = prediction.interval_95
        assert low <= prediction.bone_age_months <= high
        assert 0.0 <= prediction.stage_probability <= 1.0
        assert prediction.confidence in {"High", "Medium", "Low"}
        assert prediction.model_name == "boneage-b0" and prediction.synthetic
        assert "NOT FOR DIAGNOSTIC USE" in prediction.warning and "synthetic" in prediction.warning
    # Regression-only networks report no interval and no stage probability.
    save_untrained(tmp_path / "resnet", "resnet18")
    [plain] = Predictor.from_dir(tmp_path / "resnet").predict(images[:1], [True])
    assert plain.interval_95 is None and plain.stage_probability is None
