"""No patient identifiers in any log: studies with distinctive names, IDs, birth dates and
accession numbers go through `boneage serve`, a Celery worker and `boneage api` (including
values pydicom finds invalid, which it likes to quote in its warnings, and API queries that
carry a patient id in the query string); then every log file and captured stdout/stderr of
the three processes is searched for them."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from service.audit.tables import InstanceStatus
from tests.databases import only_backend
from tests.factory import phantom_file, write_image
from tests.peers import ApiProcess, WorkerProcess, storescu, wait_status

pytestmark = pytest.mark.dcmtk

PATIENTS = [
    # name, id, birth date (the second one is not a valid DA), accession
    ("Quixotez^Marvella", "PID-7Q3X9Z", "20140317", "ACC9K2M4W"),
    ("Brandywyne^Octavo^Jr^Dr^III^Extra", "PID-5R8T1Y", "2O13O9O2", "ACC3H7N1V"),
    ("Zephyrine^Calloway", "PID-2W6E4U", "19990231", "ACC8J5B2X"),
]


def identifiers() -> set[str]:
    found = set()
    for name, patient_id, birth, accession in PATIENTS:
        found |= {patient_id, birth, accession, *[part for part in name.split("^")
                                                  if len(part) > 4]}
    return found


def studies(directory) -> list:  # type: ignore[no-untyped-def]
    """A hand phantom (assessed) and two ramps (rejected), carrying the identifiers."""
    files = []
    for index, (name, patient_id, birth, accession) in enumerate(PATIENTS):
        if index == 0:
            path = phantom_file(directory / "p0", seed=20)
        else:
            path = directory / f"ramp{index}.dcm"
            write_image(path, seed=index, patient_id=patient_id)
        ds = dcmread(path)
        ds.PatientName, ds.PatientID = name, patient_id
        ds.PatientBirthDate, ds.AccessionNumber = birth, accession
        ds.save_as(path)
        files.append(path)
    return files


@only_backend("postgres")  # serve + a Celery worker
def test_patient_identifiers_never_reach_a_log(tmp_path, backend, start_service, redis_server):
    service = start_service(BONEAGE_BROKER_URL=redis_server.url)
    worker = WorkerProcess(service, redis_server.url).start()
    api = ApiProcess(service, token="phi-test-token-0123456789").start()
    try:
        assert storescu(service.port, *studies(tmp_path)).returncode == 0
        sessions = backend.sessions(service.var_dir)
        rows = wait_status(sessions, 3, InstanceStatus.ASSESSED, InstanceStatus.REJECTED)
        for _, patient_id, _, accession in PATIENTS:  # an admin looks the studies up
            assert len(api.json("GET", f"/instances?patient_id={patient_id}")) == 1
            assert api.request("GET", f"/instances?accession={accession}")[0] == 200
            assert api.request("GET", f"/instances?patient_id={patient_id}",
                               token=None)[0] == 401
        api.request("GET", "/")
    finally:
        api.stop()
        worker.stop()
    service.stop()
    assert {row.patient_id for row in rows} == {p[1] for p in PATIENTS}  # the DB has them
    logs = [path for path in service.var_dir.rglob("*")
            if path.is_file() and (path.suffix == ".log" or ".log." in path.name)]
    names = {path.name for path in logs}
    assert {"boneage.log", "worker.log", "api-stdout.log", "serve-stdout.log"} <= names
    leaks = {(path.name, value) for path in logs for value in identifiers()
             if value in path.read_text(errors="replace")}
    assert not leaks, leaks
