"""The hand phantom generator: deterministic, age- and sex-faithful, valid DICOM, RSNA layout."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest

from models.labels import read_labels
from models.phantom import CARPAL_ONSET, render
from service.phantoms import SYNTHETIC_NOTE, phantom_dicom, write_phantom_set
from tests.peers import tool
from tests.realdata import SHARED_DATA

pytestmark = pytest.mark.dcmtk  # dcmtk's command-line tools are the peers here

RSNA_TRAINING = SHARED_DATA / "rsna-labels" / "boneage-training-dataset.csv"


def carpal_bone_fraction(age: float, male: bool, seeds=(0, 1)) -> float:
    """Share of the carpal region brighter than soft tissue alone, on un-augmented renders."""
    values = []
    for seed in seeds:
        phantom = render(age, male, seed, size=512, augment=False)
        r0, r1, c0, c1 = phantom.carpal_box
        values.append(np.mean(phantom.pixels[r0:r1, c0:c1] / 4095 > 0.66))
    return float(np.mean(values))


def test_same_seed_same_image_other_seed_other_image():
    a = render(100, True, 7, size=256)
    b = render(100, True, 7, size=256)
    c = render(100, True, 8, size=256)
    assert np.array_equal(a.pixels, b.pixels) and a.photometric == b.photometric
    assert not np.array_equal(a.pixels, c.pixels)


def test_carpals_appear_in_the_published_order():
    order = sorted(CARPAL_ONSET, key=lambda name: CARPAL_ONSET[name][0])
    assert order[:2] == ["capitate", "hamate"] and order[-1] == "pisiform"
    seen = [len(render(age, True, 0, size=256, augment=False).carpals_ossified)
            for age in range(0, 229, 12)]
    assert seen == sorted(seen) and seen[0] <= 1 and seen[-1] == 8


def test_older_phantoms_show_more_carpal_bone_measurably():
    fractions = [carpal_bone_fraction(age, male=True) for age in (6, 60, 120, 180)]
    assert fractions == sorted(fractions) and fractions[-1] > 2 * fractions[0]


def test_plates_close_in_late_adolescence_girls_first():
    boys = [render(age, True, 0, size=256, augment=False) for age in (120, 200, 228)]
    girls = [render(age, False, 0, size=256, augment=False) for age in (120, 200, 228)]
    assert boys[0].physes_open == boys[0].epiphyses_present == 21
    assert boys[-1].physes_open == 0 and girls[-1].physes_open == 0
    assert girls[1].physes_open < boys[1].physes_open  # at 200 months girls are further along
    assert carpal_bone_fraction(60, male=False) > carpal_bone_fraction(60, male=True)
    assert not render(120, True, 0, size=256).sesamoid and render(170, True, 0, size=256).sesamoid


@pytest.mark.parametrize("seed", range(6))
def test_dicom_passes_dciodvfy(tmp_path, seed):
    phantom = render(30 + 30 * seed, seed % 2 == 0, seed, size=256)
    path = tmp_path / f"{seed}.dcm"
    phantom_dicom(phantom, f"{seed:06d}").save_as(path, enforce_file_format=True)
    report = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True)
    errors = [line for line in report.stderr.splitlines() if line.startswith("Error")]
    assert errors == []
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == phantom.photometric
    assert ds.PresentationLUTShape == ("INVERSE" if phantom.photometric == "MONOCHROME1"
                                       else "IDENTITY")
    assert np.array_equal(ds.pixel_array, phantom.pixels)
    assert SYNTHETIC_NOTE in ds.SeriesDescription


def test_monochrome1_is_the_inverse_of_bone_bright():
    flipped = next(p for p in (render(90, True, s, size=256) for s in range(40))
                   if p.photometric == "MONOCHROME1")
    r0, r1, c0, c1 = flipped.carpal_box
    # Stored values: bone (carpal region) darker than the air background in MONOCHROME1.
    assert flipped.pixels[r0:r1, c0:c1].mean() < np.median(flipped.pixels[:, :20])


def test_rsna_layout_with_real_label_prevalence(tmp_path):
    source = RSNA_TRAINING if RSNA_TRAINING.exists() else None
    written = write_phantom_set(tmp_path / "set", 6, seed=3, size=256, labels_source=source)
    labels = read_labels(tmp_path / "set" / "labels.csv")
    assert labels == written.labels and len(labels) == 6
    for label in labels:
        assert (tmp_path / "set" / "images" / f"{label.id}.png").exists()
    if source is not None:
        real = {(row.boneage_months, row.male) for row in read_labels(source)}
        assert all((label.boneage_months, label.male) in real for label in labels)
