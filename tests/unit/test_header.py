"""Receipt-time checks on the bytes a peer sent (pydicom alone reads broken files happily)."""

from __future__ import annotations

import pydicom
import pytest

from dicom_io.header import BadIdentifiers, UnreadableDataset, read_header
from tests.factory import write_image


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.dcm"
    write_image(path, seed=21, patient_id="PID-42")
    return path


def test_facts_of_a_good_file(good):
    facts = read_header(good)
    sent = pydicom.dcmread(good)
    assert facts.sop_instance_uid == sent.SOPInstanceUID
    assert facts.study_instance_uid == sent.StudyInstanceUID
    assert (facts.modality, facts.patient_id, facts.accession_number) == ("DX", "PID-42", "ACC0001")


def test_truncated_native_pixel_data(good, tmp_path):
    data = good.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:-1000])
    with pytest.raises(UnreadableDataset, match="truncated: pixel data is 1000 bytes short"):
        read_header(cut)


def test_truncated_encapsulated_pixel_data(good, tmp_path):
    ds = pydicom.dcmread(good)
    ds.compress("1.2.840.10008.1.2.5")  # RLE lossless, encapsulated
    rle = tmp_path / "rle.dcm"
    ds.save_as(rle)
    read_header(rle)  # intact: fine
    cut = tmp_path / "rle-cut.dcm"
    cut.write_bytes(rle.read_bytes()[:-200])
    with pytest.raises(UnreadableDataset, match="truncated"):
        read_header(cut)


def test_missing_identifiers(tmp_path):
    path = tmp_path / "no-study.dcm"
    ds = write_image(path)
    del ds.StudyInstanceUID
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(BadIdentifiers, match="StudyInstanceUID"):
        read_header(path)


def test_not_dicom(tmp_path):
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"\x89PNG\r\n" + bytes(500))
    with pytest.raises(UnreadableDataset, match="not a DICOM file"):
        read_header(path)
