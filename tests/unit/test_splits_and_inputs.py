"""The fixed stratified split, prepared-input cache, squash geometry, batch augmentation and
test-time augmentation: the pieces that bring real RSNA images to training and back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from models.augment import augment_batch
from models.cache import prepared_inputs
from models.datasets import Sample
from models.splits import SplitMismatch, ids_digest, split_from_card, stratified_split
from models.transforms import InferenceTransform, make_transforms, to_source
from models.tta import views_of


@dataclass(frozen=True)
class Row:
    id: str
    age_months: float
    male: bool


def rows(count: int, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    return [Row(str(i), float(rng.uniform(0, 228)), bool(rng.random() < 0.55))
            for i in range(count)]


def test_split_is_disjoint_sized_seeded_and_stratified():
    data = rows(2000)
    split = stratified_split(data, 300, 200, seed=3)
    ids = [{r.id for r in part} for part in (split.train, split.val, split.calibration)]
    assert [len(part) for part in ids] == [1500, 300, 200]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = stratified_split(list(reversed(data)), 300, 200, seed=3)
    assert ids_digest(again.val) == ids_digest(split.val)  # depends on ids, not order
    assert ids_digest(stratified_split(data, 300, 200, seed=4).val) != ids_digest(split.val)
    # Stratified: each part's share of boys and its age deciles match the whole set's.
    for part in (split.val, split.calibration):
        assert abs(np.mean([r.male for r in part]) - np.mean([r.male for r in data])) < 0.02
        whole = np.percentile([r.age_months for r in data], range(10, 100, 10))
        mine = np.percentile([r.age_months for r in part], range(10, 100, 10))
        assert np.abs(whole - mine).max() < 8.0


def test_split_from_card_redraws_the_same_parts_and_refuses_other_data():
    data = rows(500)
    recorded = stratified_split(data, 60, 40, seed=0).describe()
    assert ids_digest(split_from_card(data, recorded).val) == recorded["val"]["ids_sha256"]
    with pytest.raises(SplitMismatch, match="differs"):
        split_from_card(data[:-1], recorded)


def test_squash_resizes_each_side_and_maps_heatmaps_back_without_padding():
    image = np.zeros((400, 200), np.float32)
    image[100:300, 50:150] = 1.0  # a bright block in the middle of a tall image
    padded = make_transforms(64, train=False)(image)[0]
    squashed = make_transforms(64, train=False, geometry="squash")(image)[0]
    assert padded.shape == squashed.shape == (64, 64)
    assert padded[:, :8].max() == 0.0  # pad leaves dark side bands
    assert squashed[32, 17:47].min() > 0.9  # squash stretches the block over the width
    tensor, geometry = InferenceTransform(64, geometry="squash")(image)
    assert torch.allclose(tensor, squashed[None], atol=1e-6)
    back = to_source(np.asarray(squashed), geometry)
    assert back.shape == image.shape and back[200, 100] > 0.9 and back[20, 100] < 0.1
    with pytest.raises(ValueError, match="unknown geometry"):
        make_transforms(64, train=False, geometry="stretch")


def test_squash299_repeats_the_rsna_copy_step_and_maps_heatmaps_back():
    """A full-size image goes to 299 x 299 first (PIL bilinear, as the copy was made); a
    299-px image is left as it is, so training inputs are those of plain squash."""
    from PIL import Image

    rng = np.random.default_rng(1)
    small = rng.random((299, 299), dtype=np.float32)
    plain, _ = InferenceTransform(64, geometry="squash")(small)
    copied, _ = InferenceTransform(64, geometry="squash299")(small)
    assert torch.equal(plain, copied)
    image = np.zeros((900, 600), np.float32)
    image[300:600, 150:450] = 1.0
    as_copy = np.asarray(Image.fromarray(image, mode="F").resize(
        (299, 299), Image.Resampling.BILINEAR), dtype=np.float32)
    full, geometry = InferenceTransform(64, geometry="squash299")(image)
    via_copy, _ = InferenceTransform(64, geometry="squash")(as_copy)
    assert torch.allclose(full, via_copy, atol=1e-5)
    back = to_source(np.asarray(full[0]), geometry)
    assert back.shape == image.shape and back[450, 300] > 0.9 and back[100, 300] < 0.1


def test_prepared_inputs_equal_the_inference_transform_and_reload(tmp_path):
    rng = np.random.default_rng(0)
    images = {str(i): rng.random((90 + i, 120), dtype=np.float32) for i in range(3)}
    samples = [Sample(key, 10.0, True, tmp_path / key, lambda path: images[path.name])
               for key in images]
    transform = InferenceTransform(32, geometry="squash")
    built = prepared_inputs(samples, transform, tmp_path / "cache")
    for index, sample in enumerate(samples):
        expected = transform(sample.pixels())[0][0].numpy()
        assert np.abs(built[index] / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    reloaded = prepared_inputs(samples, transform, tmp_path / "cache")
    assert isinstance(reloaded, np.memmap) and np.array_equal(reloaded, built)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_batch_augmentation_is_seeded_bounded_and_moves_images():
    batch = torch.zeros(8, 1, 48, 48)
    batch[:, :, 10:38, 20:28] = 1.0
    first = augment_batch(batch, torch.Generator().manual_seed(5))
    second = augment_batch(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, second) and first.shape == batch.shape
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert (first - batch).abs().amax(dim=(1, 2, 3)).gt(0.1).sum() >= 4


def test_tta_views_start_with_the_plain_input_and_never_flip():
    batch = torch.zeros(2, 1, 32, 32)
    batch[:, :, 4:28, 2:10] = 1.0  # a bar on the left
    views = views_of(batch, 5)
    assert views.shape == (10, 1, 32, 32)
    assert torch.allclose(views[:2], batch, atol=1e-5)
    left, right = views[:, 0, :, :16].sum(), views[:, 0, :, 16:].sum()
    assert left > 5 * right  # small moves keep the bar on its side
