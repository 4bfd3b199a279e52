"""The assessment pipeline on real inputs: phantoms accepted, real negatives and malformed
files rejected with their codes (never an exception), outcomes audited and idempotent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import select

from dicom_io.content import Outcome
from dicom_io.scp import ReceivedFile
from models.phantom import render
from models.shipped import PHANTOM_MODEL_DIR
from service.audit.session import make_engine, make_session_factory, upgrade
from service.audit.tables import AssessmentRecord, GateRecord, Instance, InstanceStatus
from service.leases import Claimant
from service.phantoms import phantom_dicom
from service.pipeline import Assessor
from service.processing import OutputPolicy, process_instance
from service.receiver import Receiver
from service.spool import Spool
from tests.peers import boneage_command
from tests.realdata import SHARED_DATA


@pytest.fixture(scope="module")
def assessor() -> Assessor:
    # Phantoms go to the phantom-trained weights: these tests check the pipeline's contract
    # and the synthetic labelling; the research model on real hands is test_real_model's.
    return Assessor.load(PHANTOM_MODEL_DIR)


def phantom_path(directory: Path, age: float = 100.0, seed: int = 2, male: bool = True,
                 **changes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ds = phantom_dicom(render(age, male, seed, size=1024), f"{seed:04d}")
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = directory / f"phantom-{seed}-{len(list(directory.iterdir()))}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_phantom_is_assessed_with_every_field(assessor, tmp_path):
    result = assessor.assess_path(phantom_path(tmp_path, age=100.0))
    assert result.status is Outcome.ASSESSED and result.reason is None
    out = result.as_json()
    for key in ("sop_instance_uid", "bone_age_months", "interval_95", "stage",
                "stage_probability", "confidence", "chronological_age_months", "sds",
                "classification", "gates", "model"):
        assert out[key] is not None, key
    assert out["model"]["synthetic"] is True
    assert out["chronological_age_months"] == pytest.approx(100.0, abs=0.5)
    low, high = out["interval_95"]
    assert low <= out["bone_age_months"] <= high
    names = [g["name"] for g in out["gates"]]
    assert names[:7] == ["sop_class", "modality", "body_part", "view", "patient_sex",
                         "chronological_age", "image_size"]
    assert {"decode", "is_hand", "skeletal_maturity", "confidence"} <= set(names)
    heatmap = result.prediction.heatmap
    assert heatmap.shape == result.radiograph.shape


def test_missing_sex_is_flagged_and_gives_no_sds(assessor, tmp_path):
    result = assessor.assess_path(phantom_path(tmp_path, PatientSex=None))
    assert result.status is Outcome.ASSESSED and "SEX_MISSING" in result.flags
    assert result.sex_used == "both" and result.clinical.sds is None


@pytest.mark.parametrize(("name", "code"), [
    ("RG1_UNCR.dcm", "WRONG_BODY_PART"), ("RG1_J2KR.dcm", "WRONG_BODY_PART"),
    ("RG3_UNCR.dcm", "AGE_OUT_OF_RANGE"), ("RG3_J2KR.dcm", "AGE_OUT_OF_RANGE"),
    ("CT_small.dcm", "UNSUPPORTED_SOP_CLASS"), ("MR_small.dcm", "UNSUPPORTED_SOP_CLASS"),
    ("US1_UNCR.dcm", "UNSUPPORTED_SOP_CLASS"),
])
def test_real_negatives_are_rejected_with_their_code(assessor, name, code):
    result = assessor.assess_path(Path(get_testdata_file(name)))
    assert result.status is Outcome.REJECTED and result.reason == code


def test_ankle_without_a_telling_header_is_not_a_hand(assessor):
    """RG3's header already says adult; with that gone, the image itself must reject it."""
    ds = dcmread(get_testdata_file("RG3_UNCR.dcm"))
    del ds.PatientBirthDate
    ds.PatientAge = "012Y"
    result = assessor.assess_dataset(ds)
    assert result.status is Outcome.REJECTED and result.reason == "NOT_A_HAND"


@pytest.mark.skipif(not (SHARED_DATA / "real-hands-dev").exists(), reason="no ../shared/data")
def test_real_hands_are_assessed_as_images(assessor):
    from dicom_io.pixels import from_image
    from models.datasets import read_image_file

    for path in sorted((SHARED_DATA / "real-hands-dev").glob("*.png")):
        result = assessor.assess_image(from_image(read_image_file(path), "F", path.stem))
        assert result.reason not in {"NOT_A_HAND", "EDGE_DENSITY", "LOW_CONTRAST",
                                     "SYNTHETIC_PATTERN", "BLANK_IMAGE", "OVEREXPOSED"}, \
            (path.name, result.reason)


def malformed(tmp_path: Path) -> dict[str, Path]:
    source = phantom_path(tmp_path / "src")
    data = source.read_bytes()
    files = {}
    files["truncated"] = tmp_path / "truncated.dcm"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["garbage"] = tmp_path / "garbage.dcm"
    files["garbage"].write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 500)
    ds = dcmread(source)
    del ds.PixelData
    files["no_pixels"] = tmp_path / "no_pixels.dcm"
    ds.save_as(files["no_pixels"])
    sex = b"\x10\x00\x40\x00CS"  # (0010,0040) Patient's Sex, explicit VR "CS"
    assert data.count(sex) == 1
    files["bad_vr"] = tmp_path / "bad_vr.dcm"
    files["bad_vr"].write_bytes(data.replace(sex, b"\x10\x00\x40\x00ZZ"))  # no such VR
    ds = dcmread(source)
    item = Dataset()
    for _ in range(200):  # deep nesting
        outer = Dataset()
        outer.ReferencedImageSequence = Sequence([item])
        item = outer
    ds.ReferencedImageSequence = Sequence([item])
    files["deep"] = tmp_path / "deep.dcm"
    ds.save_as(files["deep"])
    return files


def test_malformed_files_give_reasons_not_exceptions(assessor, tmp_path):
    outcomes = {name: assessor.assess_path(path) for name, path in malformed(tmp_path).items()}
    assert outcomes["truncated"].reason == "DECODE_FAILED"
    assert outcomes["garbage"].reason == "DECODE_FAILED"
    assert outcomes["no_pixels"].reason == "DECODE_FAILED"
    # A Patient's Sex with an unknown VR is unreadable, not fatal: assessed as either sex.
    bad_vr = outcomes["bad_vr"]
    assert bad_vr.status is Outcome.ASSESSED and bad_vr.sex_used == "both"
    assert bad_vr.flags == ["SEX_MISSING"]
    assert outcomes["deep"].status is Outcome.ASSESSED  # nesting elsewhere does not matter


def test_processing_is_audited_and_idempotent(assessor, tmp_path, backend):
    engine = make_engine(backend.url or f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    spool = Spool(tmp_path / "spool").ensure()
    receiver = Receiver(sessions, spool, allowed_callers=[], min_free_disk_mb=0,
                        submit=lambda _: None)
    path = phantom_path(tmp_path / "in")
    ds = dcmread(path, stop_before_pixels=True)
    stored = receiver.store(None, ReceivedFile(path, ds.SOPClassUID, ds.SOPInstanceUID,
                                               ds.file_meta.TransferSyntaxUID))
    instance_id = stored.instance_id
    outputs = OutputPolicy(tmp_path / "outbox", ())
    claimant = Claimant(sessions, "test", lease_s=60)
    assert process_instance(sessions, instance_id, lambda: assessor, claimant, outputs) \
        is InstanceStatus.ASSESSED
    with sessions() as session:
        [record] = session.scalars(select(AssessmentRecord)).all()
        gates = session.scalars(select(GateRecord).order_by(GateRecord.position)).all()
    assert record.model_version == assessor.predictor.card.version and record.synthetic
    assert len(gates) >= 15 and gates[0].name == "sop_class"
    # Again: the instance is finished, nothing is computed or stored twice.
    assert process_instance(sessions, instance_id, lambda: assessor, claimant, outputs) \
        is InstanceStatus.ASSESSED
    with sessions() as session:
        assert len(session.scalars(select(AssessmentRecord)).all()) == 1
        row = session.get(Instance, instance_id)
        assert row.status is InstanceStatus.ASSESSED


def test_predict_cli_prints_json_and_writes_reports(tmp_path):
    phantom = phantom_path(tmp_path / "in")
    chest = Path(get_testdata_file("RG1_UNCR.dcm"))
    image = tmp_path / "hand.png"
    from PIL import Image

    pixels = render(80, False, 1, size=512)
    values = pixels.pixels.astype(np.float32) / 4095
    if pixels.photometric == "MONOCHROME1":
        values = 1 - values
    Image.fromarray(np.round(values * 255).astype(np.uint8)).save(image)
    run = subprocess.run(boneage_command("predict", "--json", "--out", str(tmp_path / "out"),
                                         "--sex", "F", str(phantom), str(chest), str(image)),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [r["status"] for r in rows] == ["ASSESSED", "REJECTED", "ASSESSED"]
    assert rows[1]["reason"] == "WRONG_BODY_PART"
    for key in ("sop_instance_uid", "status", "reason", "flags", "bone_age_months",
                "interval_95", "stage", "stage_probability", "confidence",
                "chronological_age_months", "sds", "classification", "gates", "model"):
        assert key in rows[0]
    assert rows[0]["outputs"] == ["sc", "sr"] and rows[1]["outputs"] == ["sr"]
    assert rows[2]["sex_used"] == "F" and rows[2]["chronological_age_months"] is None
    written = sorted(p.name.split(".")[-2] for p in (tmp_path / "out").glob("*.dcm"))
    assert written == ["sc", "sr", "sr"]


def test_requeue_puts_failed_instances_back_in_line(tmp_path):
    import os

    from service.audit.session import transaction

    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        failed = Instance(sop_instance_uid="1.2.3.4", sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                          status=InstanceStatus.FAILED, status_reason="RuntimeError: test")
        done = Instance(sop_instance_uid="1.2.3.5", sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                        status=InstanceStatus.ASSESSED)
        session.add_all([failed, done])
    env = {**os.environ, "BONEAGE_VAR_DIR": str(tmp_path)}
    run = subprocess.run(boneage_command("requeue", "1", "2"), env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "instance 1: re-queued" in run.stdout and "instance 2: not FAILED" in run.stdout
    with sessions() as session:
        assert session.get(Instance, 1).status is InstanceStatus.RECEIVED
        assert session.get(Instance, 2).status is InstanceStatus.ASSESSED
