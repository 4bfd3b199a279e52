"""Grad-CAM with trained weights on phantoms (the phantom weights, which know phantoms): the map
lies on the hand, in the source's geometry."""

from __future__ import annotations

import numpy as np

from models.inference import Predictor
from models.phantom import render
from models.shipped import PHANTOM_MODEL_DIR
from models.transforms import hand_box


def test_gradcam_peaks_on_the_hand_not_the_background():
    predictor = Predictor.from_dir(PHANTOM_MODEL_DIR)
    on_hand = 0
    ratios = []
    for seed in range(6):
        phantom = render(40 + 30 * seed, seed % 2 == 0, 100 + seed, size=768)
        pixels = phantom.pixels.astype(np.float32) / 4095
        if phantom.photometric == "MONOCHROME1":
            pixels = 1 - pixels
        [prediction] = predictor.predict([pixels], [seed % 2 == 0], heatmaps=True)
        heat = prediction.heatmap
        assert heat.shape == pixels.shape and heat.min() >= 0.0 and heat.max() <= 1.0
        r0, r1, c0, c1 = hand_box(pixels)
        hand = np.zeros(pixels.shape, bool)
        hand[r0:r1, c0:c1] = True
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        on_hand += bool(hand[peak])
        ratios.append(heat[hand].mean() / max(heat[~hand].mean(), 1e-6))
    assert on_hand >= 5, on_hand
    assert np.median(ratios) > 2.0, ratios
