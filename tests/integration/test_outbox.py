"""Outbox and delivery against a real dcmtk storescp: backoff, dead-letter, resume after a
restart, one row per output and destination."""

from __future__ import annotations

import logging
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from dicom_io.content import Outcome, ReportContent
from dicom_io.nodes import Destination
from dicom_io.sr import build_sr
from service.audit.session import make_engine, make_session_factory, transaction, upgrade
from service.audit.tables import Delivery, DeliveryStatus, Instance, InstanceStatus, utcnow
from service.outbox import Deliverer, DeliveryPolicy, backoff, queue_deliveries, write_outputs
from service.runtime import delivery_policy
from service.settings import load_settings
from tests.certificates import make_certificates
from tests.factory import make_image
from tests.peers import free_port, port_open, tool, wait_for

pytestmark = pytest.mark.dcmtk  # dcmtk's command-line tools are the peers here


@pytest.fixture
def sessions(tmp_path, backend):
    engine = make_engine(backend.url or f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    return make_session_factory(engine)


def report(seed: int = 0):
    source = make_image(seed=seed)
    content = ReportContent(outcome=Outcome.ASSESSED, algorithm_name="boneage-b0",
                            algorithm_version="test", weights_sha256="0" * 64,
                            warning="NOT FOR DIAGNOSTIC USE", synthetic=True,
                            bone_age_months=100.0, stage="mid childhood")
    return build_sr(source, content)


def queued(sessions, tmp_path: Path, destination: str) -> int:
    written = write_outputs(tmp_path / "outbox", {"sr": report()})
    with transaction(sessions) as session:
        row = Instance(sop_instance_uid="1.2.3", sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                       status=InstanceStatus.ASSESSED)
        session.add(row)
        session.flush()
        queue_deliveries(session, row.id, written, [Destination.parse(destination)])
        queue_deliveries(session, row.id, written, [Destination.parse(destination)])  # idempotent
        return row.id


def deliveries(sessions) -> list[Delivery]:
    with sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_backoff_doubles_up_to_the_cap():
    delays = [backoff(n, 5, 600).total_seconds() for n in range(1, 10)]
    assert delays[:4] == [5, 10, 20, 40] and max(delays) == 600


def test_unreachable_destination_backs_off_then_dead_letters(sessions, tmp_path, caplog):
    destination = f"PACS@127.0.0.1:{free_port()}"  # nobody listens
    queued(sessions, tmp_path, destination)
    assert len(deliveries(sessions)) == 1
    deliverer = Deliverer(sessions, DeliveryPolicy("BONEAGE", retry_initial_s=30))
    assert deliverer.run_due() == 0
    [row] = deliveries(sessions)
    assert row.status is DeliveryStatus.PENDING and row.attempts == 1
    assert "unreachable" in row.last_error or "failed" in row.last_error
    assert row.next_attempt_at - row.last_attempt_at == timedelta(seconds=30)
    assert deliverer.run_due() == 0 and deliveries(sessions)[0].attempts == 1  # not due yet
    # Past the retry window, the next failure dead-letters it, with an error log line.
    later = utcnow() + timedelta(hours=25)
    with caplog.at_level(logging.ERROR):
        deliverer.run_due(now=later)
    [row] = deliveries(sessions)
    assert row.status is DeliveryStatus.DEAD and row.attempts == 2
    assert any("dead-letter" in r.message for r in caplog.records)


def test_pending_deliveries_resume_after_a_restart(sessions, tmp_path):
    port = free_port()
    queued(sessions, tmp_path, f"STORESCP@127.0.0.1:{port}")
    # "Before the restart" one attempt failed: the PACS was down.
    policy = DeliveryPolicy("BONEAGE", retry_initial_s=0.1)
    first = Deliverer(sessions, policy)
    first.run_due()
    assert deliveries(sessions)[0].attempts == 1
    received = tmp_path / "pacs"
    received.mkdir()
    pacs = subprocess.Popen([tool("storescp"), "-aet", "STORESCP", "-od", str(received),
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(port), timeout=20)
        restarted = Deliverer(sessions, policy).start()
        wait_for(lambda: deliveries(sessions)[0].status is DeliveryStatus.DELIVERED, timeout=30)
        restarted.stop()
    finally:
        pacs.terminate()
        pacs.wait()
    [row] = deliveries(sessions)
    assert row.attempts == 2 and row.last_status == 0 and row.delivered_at is not None
    [file] = list(received.iterdir())
    assert dcmread(file).SOPInstanceUID == row.sop_instance_uid


def test_outbound_tls_delivers_to_a_tls_peer_and_refuses_an_unknown_one(sessions, tmp_path):
    import ssl

    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Comprehensive3DSRStorage

    ca, cert, key = make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(cert), str(key))
    stored = []

    def on_store(event):
        stored.append(event.dataset.SOPInstanceUID)
        return 0x0000

    scp = AE(ae_title="TLSPACS")
    scp.add_supported_context(Comprehensive3DSRStorage)
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False, ssl_context=server_context,
                              evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        queued(sessions, tmp_path, f"TLSPACS@127.0.0.1:{port}")
        untrusted = Deliverer(sessions, delivery_policy(
            load_settings(var_dir=tmp_path, delivery_tls=True)))
        untrusted.run_due()  # the system CAs do not know our throwaway CA
        assert deliveries(sessions)[0].status is DeliveryStatus.PENDING and stored == []
        with transaction(sessions) as session:
            session.get(Delivery, deliveries(sessions)[0].id).next_attempt_at = utcnow()
        trusted = Deliverer(sessions, delivery_policy(
            load_settings(var_dir=tmp_path, delivery_tls=True, delivery_tls_ca_file=ca)))
        assert trusted.run_due() == 1
    finally:
        server.shutdown()
    assert stored == [deliveries(sessions)[0].sop_instance_uid]
