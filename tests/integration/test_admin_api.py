"""The admin HTTP API (`boneage api`) against a real `boneage serve`, dcmtk's storescu as the
modality and storescp as the PACS, on both audit backends: token auth, reads that mirror the
CLI (JSON and CSV), filters, the radiologist's review and its export for training, the
admin's writes (retry a dead letter, requeue), readiness, metrics, and the request log."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import pytest
from pydicom import dcmread
from sqlalchemy import select

from models.datasets import dicom_samples
from service.audit.tables import (
    ApiRequest,
    AssessmentRecord,
    Delivery,
    DeliveryStatus,
    InstanceStatus,
)
from tests.databases import only_backend
from tests.factory import phantom_file, write_image
from tests.peers import (
    ApiProcess,
    boneage_command,
    free_port,
    port_open,
    stop_process,
    storescu,
    tool,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.dcmtk

TOKEN = "test-token-0123456789abcdef"


def cli(service, *args: str) -> str:
    done = subprocess.run(boneage_command(*args), env=service.env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def storescp(port: int, directory) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([tool("storescp"), "-aet", "PACS", "-od", str(directory),
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(port), 20)
    return process


def send_hand_and_ramp(tmp_path, service) -> None:  # type: ignore[no-untyped-def]
    hand = phantom_file(tmp_path / "hand", seed=5)
    ds = dcmread(hand)
    ds.AccessionNumber, ds.PatientID = "ACCHAND1", "PID-HAND"
    ds.save_as(hand)
    ramp = tmp_path / "ramp.dcm"
    write_image(ramp, seed=3, patient_id="PID-RAMP")  # a ramp: the gates reject it
    assert storescu(service.port, hand, ramp).returncode == 0


def test_admin_api_mirrors_the_cli_and_takes_reviews(tmp_path, backend, start_service):
    pacs_port = free_port()
    pacs = storescp(pacs_port, tmp_path / "pacs")
    service = start_service(BONEAGE_DESTINATIONS=f"PACS@127.0.0.1:{pacs_port}")
    api = ApiProcess(service, token=TOKEN).start()
    try:
        send_hand_and_ramp(tmp_path, service)
        sessions = backend.sessions(service.var_dir)
        rows = wait_status(sessions, 2, InstanceStatus.ASSESSED, InstanceStatus.REJECTED)
        hand_id = next(r.id for r in rows if r.status is InstanceStatus.ASSESSED)
        ramp_id = next(r.id for r in rows if r.status is InstanceStatus.REJECTED)
        check_reads(api, service, hand_id, ramp_id)
        check_reviews(api, service, sessions, hand_id, ramp_id, tmp_path)
        check_operations(api, sessions)
    finally:
        api.stop()
        stop_process(pacs)


def check_reads(api: ApiProcess, service, hand_id: int, ramp_id: int) -> None:  # type: ignore[no-untyped-def]
    assert api.request("GET", "/instances", token=None)[0] == 401
    assert api.request("GET", "/instances", token="wrong-token-0123456789")[0] == 401
    listed = api.json("GET", "/instances")
    assert listed == [json.loads(line) for line in cli(service, "audit", "list", "--json")
                      .splitlines()]  # the API and the CLI give the same answer
    [hand] = api.json("GET", "/instances?accession=ACCHAND1")
    assert hand["id"] == hand_id and hand["bone_age_months"] > 0 and hand["confidence"]
    [ramp] = api.json("GET", "/instances?status=REJECTED")
    assert ramp["id"] == ramp_id and ramp["patient_id"] == "PID-RAMP"
    assert [r["id"] for r in api.json("GET", f"/instances?reason={ramp['status_reason']}")] \
        == [ramp_id]
    assert api.json("GET", "/instances?since=2999-01-01") == []
    assert api.request("GET", "/instances?since=yesterday")[0] == 422
    status, body, headers = api.request("GET", "/instances?format=csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert [row["id"] for row in csv.DictReader(io.StringIO(body.decode()))] == \
        [str(hand_id), str(ramp_id)][::-1 if hand_id < ramp_id else 1]
    detail = api.json("GET", f"/instances/{hand_id}")
    assert detail == json.loads(cli(service, "audit", "show", str(hand_id), "--json"))
    assert [e["status"] for e in detail["events"]] == ["RECEIVED", "QUEUED", "PROCESSING",
                                                       "ASSESSED"]
    assert detail["association"]["calling_ae"] == "MODALITY"
    assert {d["kind"] for d in detail["deliveries"]} == {"sr", "sc"}
    history = api.request("GET", f"/instances/{hand_id}?format=csv")[1].decode()
    assert "association" in history and "assessment" in history
    assert api.request("GET", "/instances/999999")[0] == 404
    wait_for(lambda: api.json("GET", "/stats")["deliveries_by_status"].get("DELIVERED") == 3)
    png = api.request("GET", f"/instances/{hand_id}/report-image.png")
    assert png[0] == 200 and png[1][:8] == b"\x89PNG\r\n\x1a\n"


def check_reviews(api: ApiProcess, service, sessions, hand_id: int, ramp_id: int,  # type: ignore[no-untyped-def]
                  tmp_path) -> None:
    with sessions() as session:
        ai = session.scalar(select(AssessmentRecord.bone_age_months)
                            .where(AssessmentRecord.instance_id == hand_id))
    reader = {"X-Boneage-User": "Dr Reader"}
    accepted = api.json("POST", f"/instances/{hand_id}/review",
                        {"reader": "dr.a", "accept": True}, headers=reader)
    assert accepted["verdict"] == "ACCEPTED" and accepted["reader_bone_age_months"] == ai
    modified = api.json("POST", f"/instances/{hand_id}/review",
                        {"reader": "dr.b", "bone_age_months": 100.0, "comment": "wrist"},
                        headers=reader)
    assert modified["verdict"] == "MODIFIED" and modified["recorded_by"] == "Dr Reader (token)"
    assert api.request("POST", f"/instances/{ramp_id}/review",
                       {"reader": "dr.a", "accept": True})[0] == 409  # no bone age to review
    assert api.request("POST", f"/instances/{hand_id}/review",
                       {"reader": "dr.a", "accept": True, "bone_age_months": 3})[0] == 422
    assert api.request("POST", f"/instances/{hand_id}/review", {"reader": "x",
                       "bone_age_months": 999})[0] == 422
    with sessions() as session:  # the AI's values are never overwritten
        assert session.scalar(select(AssessmentRecord.bone_age_months)
                              .where(AssessmentRecord.instance_id == hand_id)) == ai
    detail = api.json("GET", f"/instances/{hand_id}")
    assert [r["verdict"] for r in detail["reviews"]] == ["ACCEPTED", "MODIFIED"]
    agreement = api.json("GET", "/stats")["agreement"]  # the newest review counts
    assert agreement["reviewed"] == 1 and agreement["accepted_share"] == 0.0
    assert agreement["mae_months"] == pytest.approx(abs(100.0 - ai), abs=0.01)
    assert json.loads(cli(service, "audit", "stats", "--json"))["agreement"] == agreement
    out = tmp_path / "labels"
    exported = json.loads(cli(service, "audit", "export-labels", "--out", str(out)))
    assert exported["written"] == 1
    [row] = list(csv.DictReader((out / "labels.csv").open()))
    assert row["id"] == str(hand_id) and float(row["boneage"]) == 100.0
    # The layout `boneage train --data OUT/images --labels OUT/labels.csv` reads.
    [sample] = dicom_samples(out / "images", out / "labels.csv", lambda path: None)
    assert sample.age_months == 100.0 and sample.path.name == f"{hand_id}.dcm"


def check_operations(api: ApiProcess, sessions) -> None:  # type: ignore[no-untyped-def]
    assert api.request("GET", "/healthz", token=None)[0] == 200
    ready = api.json("GET", "/readyz", token=None)
    assert ready["ready"] is True and ready["checks"]["dicom_listener"]["ok"]
    assert api.request("POST", "/instances/1/requeue")[0] == 409  # not FAILED
    with sessions() as session:
        delivery_id = session.scalar(select(Delivery.id).limit(1))
    assert api.request("POST", f"/deliveries/{delivery_id}/retry")[0] == 409  # not dead
    metrics = api.request("GET", "/metrics")[1].decode()
    assert "boneage_instances_received_total 2.0" in metrics
    assert "boneage_instances_assessed_total 1.0" in metrics
    assert 'boneage_instances_rejected_total{reason="' in metrics
    assert 'boneage_stage_seconds_count{stage="delivery"} 2.0' in metrics
    assert 'boneage_model_info{name="boneage-mnv3"' in metrics
    spec = api.json("GET", "/openapi.json")
    assert {"/instances", "/instances/{instance_id}/review", "/stats", "/metrics",
            "/deliveries/{delivery_id}/retry"} <= set(spec["paths"])
    with sessions() as session:
        logged = session.scalars(select(ApiRequest).order_by(ApiRequest.id)).all()
    assert any(r.status_code == 401 and r.who == "(unauthenticated)" for r in logged)
    reviews = [r for r in logged if r.action and r.action.startswith("review")]
    assert [r.who for r in reviews] == ["Dr Reader", "Dr Reader"]
    assert all("?" not in r.path for r in logged)  # query strings (patient ids) are not kept


# The outbox's retry and give-up logic runs on both backends in test_outbox.py; this checks the
# API's part of it, on the production backend.
@only_backend("postgres")
def test_dead_letter_retried_from_the_api_is_delivered(tmp_path, start_service, backend):
    """A PACS that was down past the retry window: the outputs are dead-lettered; once it is
    back, the admin's retry sends them."""
    pacs_port = free_port()
    service = start_service(BONEAGE_DESTINATIONS=f"PACS@127.0.0.1:{pacs_port}",
                            BONEAGE_DELIVERY_GIVE_UP_HOURS="0.0003",
                            BONEAGE_DELIVERY_RETRY_INITIAL_S="0.2")
    api = ApiProcess(service).start()  # no token: loopback only
    try:
        ramp = tmp_path / "ramp.dcm"
        write_image(ramp, seed=8)
        assert storescu(service.port, ramp).returncode == 0
        sessions = backend.sessions(service.var_dir)
        wait_for(lambda: api.json("GET", "/stats")["deliveries_by_status"].get("DEAD") == 1,
                 60)
        [failing] = api.json("GET", "/stats")["failing_destinations"]
        assert failing["dead"] == 1 and failing["destination"] == f"PACS@127.0.0.1:{pacs_port}"
        pacs = storescp(pacs_port, tmp_path / "pacs")
        try:
            with sessions() as session:
                delivery_id = session.scalar(select(Delivery.id))
            assert api.json("POST", f"/deliveries/{delivery_id}/retry")["due"] is True
            wait_for(lambda: api.json("GET", "/stats")["deliveries_by_status"]
                     .get("DELIVERED") == 1, 30)
        finally:
            stop_process(pacs)
        with sessions() as session:
            row = session.get(Delivery, delivery_id)
            assert row.status is DeliveryStatus.DELIVERED and row.retried_at is not None
            logged = session.scalars(select(ApiRequest).where(ApiRequest.action.is_not(None)))
            assert [(r.auth, r.action) for r in logged] == [
                ("loopback", f"retry delivery {delivery_id}")]
        assert len(list((tmp_path / "pacs").iterdir())) == 1
    finally:
        api.stop()
