"""What the reports show: the report image's layout, the SR's units."""

from __future__ import annotations

import numpy as np

from dicom_io.content import Outcome, ReportContent
from dicom_io.sc import IMAGE_HEIGHT, PANEL_WIDTH, content_columns, render_report_image
from models.phantom import render

CONTENT = ReportContent(outcome=Outcome.ASSESSED, algorithm_name="boneage-b0",
                        algorithm_version="test", weights_sha256="0" * 64,
                        warning="NOT FOR DIAGNOSTIC USE", synthetic=True,
                        bone_age_months=100.0, stage="late childhood")


def test_a_narrow_hand_on_a_wide_plate_gets_the_panel_beside_it():
    hand = render(100, True, 1, size=512).pixels.astype(np.float32) / 4095
    hand = np.clip(hand, 0.05, 1.0)  # something shows in every column of the hand itself
    plate = np.zeros((512, 1600), np.float32)
    plate[:, 300:812] = hand  # a 512-px hand with empty detector on both sides
    keep = content_columns(plate)
    assert 290 <= keep.start <= 300 and 812 <= keep.stop <= 822
    image = render_report_image(plate, np.ones_like(plate), CONTENT)
    alone = render_report_image(hand, None, CONTENT)
    # The empty bands are gone: the image is as wide as the hand's own (within the margin).
    assert image.shape[0] == IMAGE_HEIGHT
    assert abs(image.shape[1] - alone.shape[1]) <= 0.03 * alone.shape[1]
    panel = image[:, image.shape[1] - PANEL_WIDTH:]
    assert panel[:200].max() == 255  # the panel's text is there, right of the radiograph


def test_an_image_that_fills_its_plate_is_kept_whole():
    pixels = np.full((100, 80), 0.5, np.float32)
    assert content_columns(pixels) == slice(0, 80)
    blank = np.zeros((100, 80), np.float32)
    assert content_columns(blank) == slice(0, 80)


def test_the_bone_age_interval_is_stated_in_months_in_the_sr():
    from dataclasses import replace

    from dicom_io.sr import build_sr
    from tests.factory import make_image

    content = replace(CONTENT, interval_95=(80.0, 130.0), normal_range_months=(90.0, 150.0))
    sr = build_sr(make_image(seed=1), content)
    group = sr.ContentSequence[-1].ContentSequence[0].ContentSequence
    bone_age = next(item for item in group if item.ValueType == "NUM"
                    and item.ConceptNameCodeSequence[0].CodeValue == "37362-1")
    properties = {item.ConceptNameCodeSequence[0].CodeValue: item
                  for item in bone_age.ContentSequence if item.ValueType == "NUM"}
    upper, lower = properties["371886008"], properties["371885007"]
    for item, value in ((upper, 30.0), (lower, 20.0)):
        measured = item.MeasuredValueSequence[0]
        assert measured.MeasurementUnitsCodeSequence[0].CodeValue == "mo"
        assert float(measured.NumericValue) == value
