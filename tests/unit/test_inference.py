"""Model directories (safetensors + card) and the inference API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
from models.shipped import PHANTOM_MODEL_DIR

# Untrained weights: these tests check plumbing and contracts, not accuracy.
SIZE = 96


def bone_bright(phantom) -> np.ndarray:
    pixels = phantom.pixels.astype(np.float32) / 4095
    return 1 - pixels if phantom.photometric == "MONOCHROME1" else pixels


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
    images = [bone_bright(render(100, True, seed, size=256)) for seed in range(2)]
    predictions = predictor.predict(images, [True, False])
    assert len(predictions) == 2
    for prediction in predictions:
        assert 0.0 <= prediction.bone_age_months <= 240.0
        low, high = prediction.interval_95
        assert low <= prediction.bone_age_months <= high
        assert 0.0 <= prediction.stage_probability <= 1.0
        assert prediction.confidence in {"High", "Medium", "Low"}
    model = predictor.model
    assert model.name == "boneage-b0" and model.synthetic
    assert "NOT FOR DIAGNOSTIC USE" in model.warning and "synthetic" in model.warning
    # Regression-only networks report no interval and no stage probability.
    save_untrained(tmp_path / "resnet", "resnet18")
    [plain] = Predictor.from_dir(tmp_path / "resnet").predict(images[:1], [True])
    assert plain.interval_95 is None and plain.stage_probability is None


def test_threads_sharing_a_predictor_each_get_their_own_image_result(tmp_path):
    """The embedded runner's worker threads share one Predictor; Grad-CAM keeps the pass it
    drives on the wrapper, so an unguarded pass could hand one patient's age to another."""
    predictor = Predictor.from_dir(PHANTOM_MODEL_DIR)  # trained on phantoms: each gets its own age
    images = [bone_bright(render(age, seed % 2 == 0, seed, size=256))
              for seed, age in enumerate((20, 60, 110, 150, 190, 220))]
    alone = [predictor.predict([image], [True], heatmaps=True)[0] for image in images]
    assert len({round(p.bone_age_months, 4) for p in alone}) == len(images)

    def run(index: int) -> tuple[int, float, np.ndarray]:
        [prediction] = predictor.predict([images[index]], [True], heatmaps=True)
        return index, prediction.bone_age_months, prediction.heatmap

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(run, [i % len(images) for i in range(24)]))
    for index, age, heatmap in together:
        assert age == pytest.approx(alone[index].bone_age_months, abs=1e-3)
        assert np.allclose(heatmap, alone[index].heatmap, atol=1e-3)


def test_tta_views_average_the_distribution_and_keep_the_contract(tmp_path):
    import json

    from models.card import CARD_FILE

    save_untrained(tmp_path / "model")
    plain = Predictor.from_dir(tmp_path / "model")
    card_path = tmp_path / "model" / CARD_FILE
    card = json.loads(card_path.read_text())
    card["inference"] = {"tta_views": 5}
    card_path.write_text(json.dumps(card))
    averaged = Predictor.from_dir(tmp_path / "model")
    assert averaged.tta_views == 5
    images = [bone_bright(render(age, True, seed, size=256))
              for seed, age in enumerate((40, 150))]
    with_views = averaged.predict(images, [True, False], heatmaps=True)
    without = plain.predict(images, [True, False])
    for tta, single in zip(with_views, without, strict=True):
        low, high = tta.interval_95
        assert low <= tta.bone_age_months <= high and 0.0 <= tta.stage_probability <= 1.0
        assert tta.heatmap is not None and tta.bone_age_months != single.bone_age_months


def test_unknown_sex_is_read_as_both_and_merged_by_one_rule():
    """The unknown-sex rule lives in the Predictor: the mean of the boy's and the girl's
    age, an interval covering both, the lower stage probability, and the same tier rule."""
    predictor = Predictor.from_dir(PHANTOM_MODEL_DIR)
    image = bone_bright(render(60, False, 3, size=256))
    boy, girl, either = predictor.predict([image, image, image], [True, False, None])
    assert either.bone_age_months == pytest.approx(
        (boy.bone_age_months + girl.bone_age_months) / 2, abs=1e-4)
    assert either.interval_95[0] == pytest.approx(min(boy.interval_95[0], girl.interval_95[0]))
    assert either.interval_95[1] == pytest.approx(max(boy.interval_95[1], girl.interval_95[1]))
    assert either.stage_probability <= max(boy.stage_probability, girl.stage_probability)
    assert either.confidence in {"High", "Medium", "Low"}
