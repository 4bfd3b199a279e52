"""Quality gates on real and synthetic fixtures, and the clinical numbers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from dicom_io.header import header_facts
from dicom_io.pixels import read_radiograph
from models.handcheck import HandCheck
from models.phantom import render
from models.shipped import HAND_CHECK_DIR
from service.clinical import (
    chronological_age,
    clinical_numbers,
    gp_sd,
    parse_age_string,
)
from service.gates import GateThresholds, Reason
from service.gates.anatomy import anatomy_gate
from service.gates.header import header_gates
from service.gates.image import image_gates
from tests.factory import make_image
from tests.realdata import SHARED_DATA

LIMITS = GateThresholds()
REAL_HANDS = sorted((SHARED_DATA / "real-hands-dev").glob("*.png"))


def phantom_pixels(age: float = 100.0, seed: int = 0) -> np.ndarray:
    phantom = render(age, seed % 2 == 0, seed, size=512)
    pixels = phantom.pixels.astype(np.float32) / 4095
    return 1.0 - pixels if phantom.photometric == "MONOCHROME1" else pixels


def failing(pixels: np.ndarray, saturation: float | None = None) -> list[str]:
    return [g.code for g in image_gates(pixels, saturation, LIMITS) if not g.passed]


@pytest.fixture(scope="module")
def hand_check() -> HandCheck:
    return HandCheck.from_dir(HAND_CHECK_DIR)


# --- image gates: each has a passing fixture (phantoms, real hands) and a failing one -------

def test_phantoms_pass_every_image_gate():
    for seed in range(6):
        assert failing(phantom_pixels(20 + 35 * seed, seed)) == []


def test_colour_photograph_fails_on_saturation():
    assert Reason.COLOR_PHOTO in failing(phantom_pixels(), saturation=0.45)


def test_blank_image_fails_on_variance():
    blank = np.full((600, 600), 0.5, np.float32)
    blank += np.random.default_rng(0).normal(0, 0.003, blank.shape).astype(np.float32)
    assert failing(blank)[0] == Reason.BLANK_IMAGE


def test_overexposed_image_fails_on_brightness():
    burned = np.maximum(phantom_pixels(), 0.0)
    burned[:, :] = np.clip(burned * 0.2 + 0.9, 0, 1)
    assert Reason.OVEREXPOSED in failing(burned)


def test_synthetic_gradient_fails_on_histogram_peak():
    ramp = np.tile(np.linspace(0, 1, 700, dtype=np.float32), (500, 1))
    assert failing(ramp)[0] == Reason.SYNTHETIC_PATTERN


def test_low_contrast_copy_fails_on_contrast_to_noise():
    # Anatomy squeezed to 3% of the range under noise of 2%: no window brings it back.
    noise = np.random.default_rng(2).normal(0, 0.02, (512, 512)).astype(np.float32)
    fogged = np.clip(0.45 + phantom_pixels() * 0.03 + noise, 0, 1)
    assert failing(fogged)[0] == Reason.LOW_CONTRAST


def test_dim_narrow_range_hand_passes_because_a_window_restores_it():
    # A linear window stretches anatomy and noise alike: a dim image is not a low-contrast one.
    dim = 0.05 + phantom_pixels() * 0.12
    assert Reason.LOW_CONTRAST not in failing(dim)


def test_noise_fails_on_edge_density():
    noise = np.random.default_rng(1).random((600, 600), dtype=np.float32)
    noise = 0.5 + (noise - 0.5) * 0.5
    assert Reason.EDGE_DENSITY in failing(noise)


@pytest.mark.skipif(not REAL_HANDS, reason="../shared/data is absent")
def test_real_hands_pass_the_image_and_anatomy_gates(hand_check):
    for path in REAL_HANDS:
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255
        assert failing(pixels) == [], path.name
        assert anatomy_gate(pixels, hand_check, LIMITS).passed, path.name


# --- anatomy: real negatives from pydicom-data -------------------------------------------

@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG3_UNCR.dcm", "RG3_J2KR.dcm",
                                  "CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm"])
def test_real_non_hands_are_not_hands(hand_check, name):
    pixels = read_radiograph(Path(get_testdata_file(name))).pixels
    gate = anatomy_gate(pixels, hand_check, LIMITS)
    assert not gate.passed and gate.code == Reason.NOT_A_HAND and gate.value < 0.1


def test_phantoms_are_hands(hand_check):
    for seed in range(6):
        assert anatomy_gate(phantom_pixels(15 + 40 * seed, seed), hand_check, LIMITS).passed


# --- header gates ---------------------------------------------------------------------------

def header_codes(**changes) -> list[str]:
    ds = make_image()
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    facts = header_facts(ds)
    age = chronological_age(facts.birth_date, facts.study_date, facts.patient_age).months
    return [g.code for g in header_gates(facts, age, LIMITS) if not g.passed]


def test_header_gates():
    assert header_codes() == []
    assert header_codes(SOPClassUID="1.2.840.10008.5.1.4.1.1.2")[0] == "UNSUPPORTED_SOP_CLASS"
    assert header_codes(Modality="CT") == ["WRONG_MODALITY"]
    assert header_codes(BodyPartExamined="CHEST") == ["WRONG_BODY_PART"]
    assert header_codes(BodyPartExamined="EXTREMITY") == []  # ambiguous: the image decides
    assert header_codes(BodyPartExamined=None) == []
    assert header_codes(ViewPosition="LL") == ["WRONG_VIEW"]
    assert header_codes(ViewPosition="PA") == []
    assert header_codes(PatientSex=None) == ["SEX_MISSING"]  # a flag, not a rejection
    assert header_codes(PatientBirthDate="19800101") == ["AGE_OUT_OF_RANGE"]
    assert header_codes(Rows=100)[0] == "IMAGE_TOO_SMALL"


def test_secondary_capture_only_when_allowed():
    sc = "1.2.840.10008.5.1.4.1.1.7"
    assert header_codes(SOPClassUID=sc, Modality="OT")[0] == "UNSUPPORTED_SOP_CLASS"
    facts = header_facts(make_image(sop_class=sc, modality="OT"))
    allowed = GateThresholds(allow_secondary_capture=True)
    assert all(g.passed for g in header_gates(facts, 100.0, allowed) if g.name != "patient_sex")


# --- clinical numbers -----------------------------------------------------------------------

def test_chronological_age_from_dates_then_patient_age():
    assert chronological_age(date(2015, 1, 1), date(2025, 1, 1), "003Y").months == \
        pytest.approx(120.0, abs=0.1)
    fallback = chronological_age(None, date(2025, 1, 1), "010Y")
    assert fallback.months == 120.0 and fallback.source == "PatientAge"
    assert chronological_age(None, None, None).months is None
    assert parse_age_string("018M") == 18.0 and parse_age_string("10Y") is None


def test_greulich_pyle_sd_is_interpolated_and_bounded():
    assert gp_sd(120, male=True) == pytest.approx(9.79)
    assert gp_sd(126, male=True) == pytest.approx((9.79 + 10.09) / 2)
    assert gp_sd(192, male=False) == pytest.approx(7.31)
    assert gp_sd(200, male=False) is None  # the girls' table ends at 16 years
    assert gp_sd(2, male=True) is None


def test_sds_and_classification():
    chrono = chronological_age(date(2015, 1, 1), date(2025, 1, 1), None)  # ~120 months
    advanced = clinical_numbers(150.0, chrono, "M")
    assert advanced.sds == pytest.approx((150 - chrono.months) / gp_sd(chrono.months, True))
    assert advanced.classification == "advanced"
    assert clinical_numbers(121.0, chrono, "M").classification == "normal"
    assert clinical_numbers(90.0, chrono, "F").classification == "delayed"
    assert clinical_numbers(121.0, chrono, None).sds is None  # no sex, no SDS
