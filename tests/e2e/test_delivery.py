"""Results back to a real PACS: Orthanc routes a radiograph to us, we send the SR and the
report image back into the same study, exactly once, even when Orthanc is down for a while."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import select

from service.audit.tables import AssessmentRecord, Delivery, DeliveryStatus, Instance
from tests.databases import only_backend
from tests.factory import phantom_file
from tests.orthanc import AE_TITLE, Orthanc
from tests.peers import free_port, storescu, tool, wait_for

pytestmark = pytest.mark.dcmtk  # dcmtk's command-line tools are the peers here

FAST_RETRY = {"BONEAGE_DELIVERY_RETRY_INITIAL_S": "0.5", "BONEAGE_DELIVERY_RETRY_MAX_S": "1"}


def results(orthanc: Orthanc) -> tuple[list[dict], list[dict]]:
    return orthanc.by_modality("SR"), orthanc.by_modality("OT")


def dciodvfy_errors(data: bytes, tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    run = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture
def pacs(tmp_path):
    started: list[Orthanc] = []

    def make(boneage_port: int, dicom_port: int) -> Orthanc:
        orthanc = Orthanc(tmp_path / f"orthanc{len(started)}", boneage_port,
                          dicom_port=dicom_port)
        started.append(orthanc)
        return orthanc

    yield make
    for orthanc in started:
        orthanc.stop()


def test_orthanc_routes_a_phantom_and_gets_sr_and_report_image_back(
        tmp_path, backend, start_service, pacs):
    orthanc_port = free_port()
    service = start_service(BONEAGE_DESTINATIONS=f"{AE_TITLE}@127.0.0.1:{orthanc_port}",
                            **FAST_RETRY)
    orthanc = pacs(service.port, orthanc_port).start()
    source = phantom_file(tmp_path / "in")
    sent = dcmread(source)
    assert storescu(orthanc.dicom_port, source, aec=AE_TITLE).returncode == 0
    # Sending the same source twice must not duplicate the result.
    assert storescu(orthanc.dicom_port, source, aec=AE_TITLE).returncode == 0

    srs, scs = wait_for(lambda: (lambda r: r if r[0] and r[1] else None)(results(orthanc)),
                        timeout=120, interval=0.5)
    sr_file, sc_file = orthanc.file(srs[0]), orthanc.file(scs[0])
    sr, sc = dcmread(io.BytesIO(sr_file)), dcmread(io.BytesIO(sc_file))
    assert sr.StudyInstanceUID == sc.StudyInstanceUID == sent.StudyInstanceUID
    assert sr.SeriesInstanceUID != sent.SeriesInstanceUID != sc.SeriesInstanceUID
    assert "NOT FOR DIAGNOSTIC USE" in sr.SeriesDescription and sc.BurnedInAnnotation == "YES"
    assert dciodvfy_errors(sr_file, tmp_path, "sr.dcm") == []
    assert dciodvfy_errors(sc_file, tmp_path, "sc.dcm") == []
    dump = subprocess.run([tool("dsrdump"), str(tmp_path / "sr.dcm")], capture_output=True,
                          text=True)
    assert dump.returncode == 0 and "Bones X-ray bone age" in dump.stdout

    # The SR's bone age is the pipeline's prediction, as the audit DB recorded it.
    with backend.sessions(service.var_dir)() as session:
        [record] = session.scalars(select(AssessmentRecord)).all()
        deliveries = session.scalars(select(Delivery)).all()
    bone_age = next(item for item in sr.ContentSequence[-1].ContentSequence[0].ContentSequence
                    if item.ValueType == "NUM"
                    and item.ConceptNameCodeSequence[0].CodeValue == "37362-1")
    assert float(bone_age.MeasuredValueSequence[0].NumericValue) == \
        pytest.approx(record.bone_age_months, abs=0.01)
    assert sorted(d.kind for d in deliveries) == ["sc", "sr"]
    assert all(d.status is DeliveryStatus.DELIVERED for d in deliveries)

    # Orthanc forwarded the second copy too (or dropped it as already stored): either way we
    # recorded it as a duplicate and did not assess or send it again.
    with backend.sessions(service.var_dir)() as session:
        statuses = sorted(row.status.value for row in session.scalars(select(Instance)))
    assert statuses in (["ASSESSED"], ["ASSESSED", "DUPLICATE"])
    assert [len(r) for r in results(orthanc)] == [1, 1]


@only_backend("sqlite")  # gates; delivery on both above
def test_chest_radiograph_gets_a_rejection_report(tmp_path, backend, start_service, pacs):
    orthanc_port = free_port()
    service = start_service(BONEAGE_DESTINATIONS=f"{AE_TITLE}@127.0.0.1:{orthanc_port}",
                            **FAST_RETRY)
    orthanc = pacs(service.port, orthanc_port).start()
    chest = Path(get_testdata_file("RG1_UNCR.dcm"))
    assert storescu(orthanc.dicom_port, chest, aec=AE_TITLE).returncode == 0
    [sr] = wait_for(lambda: orthanc.by_modality("SR"), timeout=120, interval=0.5)
    report = dcmread(io.BytesIO(orthanc.file(sr)))
    meanings = [item.ConceptCodeSequence[0].CodeMeaning
                for item in report.ContentSequence[-1].ContentSequence[0].ContentSequence
                if item.ValueType == "CODE"]
    assert any(m.startswith("WRONG_BODY_PART") for m in meanings)
    assert orthanc.by_modality("OT") == []  # no report image for a rejected image
    assert dciodvfy_errors(orthanc.file(sr), tmp_path, "reject.dcm") == []


def test_pacs_down_retries_and_delivers_exactly_once(tmp_path, backend, start_service, pacs):
    orthanc_port = free_port()
    service = start_service(BONEAGE_DESTINATIONS=f"{AE_TITLE}@127.0.0.1:{orthanc_port}",
                            **FAST_RETRY)
    source = phantom_file(tmp_path / "in", seed=7)
    assert storescu(service.port, source).returncode == 0  # straight to us; PACS is down
    sessions = backend.sessions(service.var_dir)

    def retried() -> bool:
        with sessions() as session:
            rows = session.scalars(select(Delivery)).all()
        return len(rows) == 2 and all(r.attempts >= 2 and r.status is DeliveryStatus.PENDING
                                      for r in rows)

    wait_for(retried, timeout=120, interval=0.5)
    orthanc = pacs(service.port, orthanc_port).start()

    def delivered() -> list[Delivery] | None:
        # Orthanc holds an instance a moment before our SCU has read its C-STORE response and
        # recorded it, so wait on our own rows, then check Orthanc.
        with sessions() as session:
            rows = session.scalars(select(Delivery)).all()
        return rows if all(r.status is DeliveryStatus.DELIVERED for r in rows) else None

    rows = wait_for(delivered, timeout=60, interval=0.5)
    assert len(rows) == 2 and all(r.last_error is None and r.attempts >= 3 for r in rows)
    assert [len(r) for r in results(orthanc)] == [1, 1]
