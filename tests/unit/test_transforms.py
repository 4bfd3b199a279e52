"""The shared MONAI transforms: shapes, ranges, determinism, no flips, and the hand crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Flip, RandAxisFlip, RandFlip
from PIL import Image

from models.phantom import render
from models.transforms import hand_box, make_transforms
from tests.realdata import SHARED_DATA

REAL_HANDS = SHARED_DATA / "real-hands-dev"


def bone_bright(seed: int, size: int = 512) -> np.ndarray:
    phantom = render(100, seed % 2 == 0, seed, size=size)
    pixels = phantom.pixels.astype(np.float32) / 4095
    return 1.0 - pixels if phantom.photometric == "MONOCHROME1" else pixels


def test_inference_transform_shape_range_and_determinism():
    image = np.random.default_rng(0).random((700, 500), dtype=np.float32)
    transform = make_transforms(128, train=False)
    first, second = transform(image), transform(image)
    assert first.shape == (1, 128, 128) and first.dtype == torch.float32
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(first, second)


def test_training_augments_reproducibly_and_never_flips():
    image = bone_bright(1)
    train = make_transforms(128, train=True)
    train.set_random_state(7)
    a = train(image)
    train.set_random_state(7)
    b = train(image)
    assert torch.equal(a, b)
    assert not torch.equal(a, make_transforms(128, train=False)(image))
    assert not any(isinstance(t, Flip | RandFlip | RandAxisFlip) for t in train.transforms)


def test_hand_crop_keeps_the_carpals_of_phantoms():
    kept = 0
    for seed in range(20):
        phantom = render(100, seed % 2 == 0, seed, size=512)
        box = hand_box(bone_bright(seed))
        r0, r1, c0, c1 = phantom.carpal_box
        kept += box is not None and box[0] <= r0 and box[1] >= r1 and box[2] <= c0 and box[3] >= c1
    assert kept >= 18


@pytest.mark.skipif(not REAL_HANDS.exists(), reason="../shared/data is absent")
def test_hand_crop_finds_real_hands():
    for path in sorted(REAL_HANDS.glob("*.png")):
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255
        box = hand_box(pixels)
        assert box is not None, path.name
        r0, r1, c0, c1 = box
        area = (r1 - r0) * (c1 - c0) / pixels.size
        assert 0.3 < area <= 1.05, (path.name, area)
        out = make_transforms(256, train=False, hand_crop=True)(pixels)
        assert out.shape == (1, 256, 256)


def test_large_images_are_shrunk_and_heatmaps_map_back_to_the_source():
    from models.transforms import InferenceTransform, to_source

    image = np.zeros((2000, 1500), np.float32)
    image[1200:1400, 300:500] = 1.0  # a bright square, away from the centre
    transform = InferenceTransform(128)
    tensor, geometry = transform(image)
    assert tensor.shape == (1, 128, 128) and geometry.factor == 1500 // 256
    heat = tensor[0].numpy()  # a "heatmap" that is the network input itself
    back = to_source(heat, geometry)
    assert back.shape == image.shape
    rows, cols = np.unravel_index(np.argmax(back), back.shape)
    assert 1150 <= rows <= 1450 and 250 <= cols <= 550
    # Same result as the training Compose without augmentation.
    assert torch.allclose(tensor, make_transforms(128, train=False)(image), atol=1e-6)
