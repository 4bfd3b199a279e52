"""Pixel decoding: LUTs, inversion, colour, every transfer syntax, and failures as reasons."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless

from dicom_io.pixels import DecodeError, decode, read_radiograph
from models.phantom import render
from service.phantoms import phantom_dicom
from tests.peers import tool

pytestmark = pytest.mark.dcmtk  # dcmtk's command-line tools are the peers here


def phantom_file(tmp_path: Path, photometric: str, age: float = 100.0) -> Path:
    phantom = render(age, True, 3, size=512)
    if phantom.photometric != photometric:  # same anatomy, other photometric interpretation
        phantom = type(phantom)(**{**phantom.__dict__, "photometric": photometric,
                                   "pixels": (4095 - phantom.pixels).astype(np.uint16)})
    path = tmp_path / f"phantom-{photometric}.dcm"
    phantom_dicom(phantom, "0001").save_as(path, enforce_file_format=True)
    return path


def test_monochrome1_and_monochrome2_decode_to_the_same_bone_bright_image(tmp_path):
    mono1 = read_radiograph(phantom_file(tmp_path, "MONOCHROME1"))
    mono2 = read_radiograph(phantom_file(tmp_path, "MONOCHROME2"))
    assert np.abs(mono1.pixels - mono2.pixels).max() <= 1 / 255
    # A known bright-bone pixel: the carpal region of a 100-month hand is brighter than the
    # background whatever the stored polarity.
    r0, r1, c0, c1 = render(100.0, True, 3, size=512).carpal_box
    carpals = mono1.pixels[r0:r1, c0:c1].mean()
    assert carpals > np.median(mono1.pixels) + 0.1


def test_presentation_lut_inverse_inverts_and_window_is_applied():
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    plain = decode(ds).pixels
    ds.PresentationLUTShape = "INVERSE"
    assert np.allclose(decode(ds).pixels, 1.0 - plain, atol=1e-6)
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = 40, 400  # soft-tissue window in HU
    windowed = decode(ds).pixels
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = np.clip((hu - (40 - 0.5)) / 399 + 0.5, 0, 1)
    assert np.allclose(windowed, expected, atol=1e-5)


def test_rgb_secondary_capture_becomes_gray_with_its_saturation_measured():
    radiograph = read_radiograph(Path(get_testdata_file("SC_rgb.dcm")))
    assert radiograph.pixels.ndim == 2 and radiograph.color_saturation > 0.3


@pytest.mark.parametrize("encoding", ["jpeg-ls", "jpeg-lossless", "rle-dcmtk", "rle-pydicom",
                                      "j2k-pydicom", "deflate"])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_lossless_transfer_syntaxes_decode_identically(tmp_path, encoding, photometric):
    source = phantom_file(tmp_path, photometric)
    target = tmp_path / f"{encoding}.dcm"
    commands = {
        "jpeg-ls": [tool("dcmcjpls"), "--encode-lossless"],
        "jpeg-lossless": [tool("dcmcjpeg"), "--encode-lossless-sv1"],
        "rle-dcmtk": [tool("dcmcrle")],
        "deflate": [tool("dcmconv"), "--write-xfer-deflated"],
    }
    if encoding in commands:
        subprocess.run([*commands[encoding], str(source), str(target)], check=True)
    else:
        ds = dcmread(source)
        ds.compress(RLELossless if encoding == "rle-pydicom" else JPEG2000Lossless)
        ds.save_as(target)
    reference = read_radiograph(source)
    decoded = read_radiograph(target)
    assert decoded.facts.transfer_syntax_uid != reference.facts.transfer_syntax_uid
    assert np.abs(decoded.pixels - reference.pixels).max() <= 1 / 255


def test_missing_pixel_data_is_a_decode_error():
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    with pytest.raises(DecodeError, match="no pixel data"):
        decode(ds)


def test_pixel_data_shorter_than_its_header_says_is_a_decode_error():
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    with pytest.raises(DecodeError):
        decode(ds)
