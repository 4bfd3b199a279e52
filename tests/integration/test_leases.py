"""Leases on both audit backends: a claim expires without a heartbeat, the reconciler takes it
back, a worker that lost its lease records nothing, and lost doorbells are rung again."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select, update

from dicom_io.scp import ReceivedFile
from models.phantom import render
from models.shipped import PHANTOM_MODEL_DIR
from service.audit.session import make_engine, make_session_factory, upgrade
from service.audit.status import advance
from service.audit.tables import (
    AssessmentRecord,
    Instance,
    InstanceStatus,
    Worker,
    utcnow,
)
from service.handoff import ring_again
from service.leases import WORKER_LOST, Claimant, reclaim_expired
from service.phantoms import phantom_dicom
from service.pipeline import Assessor
from service.processing import process_instance
from service.receiver import Receiver
from service.spool import Spool


@pytest.fixture(scope="module")
def assessor() -> Assessor:
    return Assessor.load(PHANTOM_MODEL_DIR)


@pytest.fixture
def audit(tmp_path, backend):
    engine = make_engine(backend.url or f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def received(sessions, tmp_path: Path, seed: int = 3) -> int:
    """One phantom radiograph through the real receiver: spooled, recorded, QUEUED."""
    directory = tmp_path / f"in{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dx.dcm"
    phantom_dicom(render(90.0, True, seed, size=512), f"{seed:04d}").save_as(
        path, enforce_file_format=True)
    ds = dcmread(path, stop_before_pixels=True)
    receiver = Receiver(sessions, Spool(tmp_path / "spool").ensure(), allowed_callers=[],
                        min_free_disk_mb=0, submit=lambda _: None)
    stored = receiver.store(None, ReceivedFile(path, ds.SOPClassUID, ds.SOPInstanceUID,
                                               ds.file_meta.TransferSyntaxUID))
    return stored.instance_id


def expire(sessions, instance_id: int) -> None:
    with sessions.begin() as session:
        session.execute(update(Instance).where(Instance.id == instance_id)
                        .values(lease_expires_at=utcnow() - timedelta(seconds=1)))


def row(sessions, instance_id: int) -> Instance:
    with sessions() as session:
        instance = session.get(Instance, instance_id)
        instance.events  # noqa: B018 - load the history before the session closes
        return instance


def test_a_worker_that_lost_its_lease_records_nothing(audit, tmp_path, assessor):
    instance_id = received(audit, tmp_path)
    slow = Claimant(audit, "celery", lease_s=30)
    other = Claimant(audit, "celery", lease_s=30)
    requeued: list[int] = []

    def slow_worker_stalls() -> Assessor:
        # While `slow` is stalled mid-task, its lease expires, the reconciler takes the
        # instance back, and `other` processes it to the end.
        expire(audit, instance_id)
        assert reclaim_expired(audit, requeued.append, max_claims=3) == [instance_id]
        assert process_instance(audit, instance_id, lambda: assessor, other) \
            is InstanceStatus.ASSESSED
        return assessor

    final = process_instance(audit, instance_id, slow_worker_stalls, slow)
    assert final is InstanceStatus.ASSESSED  # other's outcome, reported back
    instance = row(audit, instance_id)
    assert instance.lease_holder is None and instance.claims == 2
    details = [(e.status, e.detail) for e in instance.events]
    assert details[2:] == [
        (InstanceStatus.PROCESSING, f"picked up by {slow.name}"),
        (InstanceStatus.QUEUED, f"worker {slow.name} stopped renewing its lease; queued again"),
        (InstanceStatus.PROCESSING, f"picked up by {other.name}"),
        (InstanceStatus.ASSESSED, details[-1][1]),
    ]
    with audit() as session:
        assert len(session.scalars(select(AssessmentRecord)).all()) == 1
    assert requeued == [instance_id]


def test_heartbeat_keeps_a_lease_and_marks_the_worker_alive(audit, tmp_path):
    instance_id = received(audit, tmp_path)
    claimant = Claimant(audit, "celery", lease_s=30).start("1.2.3")
    try:
        with audit.begin() as session:
            assert advance(session, instance_id, InstanceStatus.PROCESSING,
                           allowed_from=(InstanceStatus.QUEUED,), lease=claimant.lease())
        expire(audit, instance_id)
        assert claimant.beat() == 1  # renewed before the reconciler looked
        assert reclaim_expired(audit, lambda _: None, max_claims=3) == []
        instance = row(audit, instance_id)
        assert instance.status is InstanceStatus.PROCESSING
        assert instance.lease_expires_at > utcnow() + timedelta(seconds=20)
        with audit() as session:
            worker = session.get(Worker, claimant.name)
            assert worker.model_version == "1.2.3" and worker.stopped_at is None
    finally:
        claimant.stop()
    # A clean stop hands the lease back at once.
    assert reclaim_expired(audit, lambda _: None, max_claims=3) == [instance_id]
    with audit() as session:
        assert session.get(Worker, claimant.name).stopped_at is not None


def test_an_instance_that_keeps_killing_workers_is_failed(audit, tmp_path):
    instance_id = received(audit, tmp_path)
    for _ in range(3):
        claimant = Claimant(audit, "celery", lease_s=30)
        with audit.begin() as session:
            assert advance(session, instance_id, InstanceStatus.PROCESSING,
                           allowed_from=(InstanceStatus.QUEUED,), lease=claimant.lease())
        expire(audit, instance_id)
        reclaim_expired(audit, lambda _: None, max_claims=3)
    instance = row(audit, instance_id)
    assert instance.status is InstanceStatus.FAILED
    assert instance.status_reason == WORKER_LOST and instance.claims == 3
    assert "gave up after 3 claims" in instance.events[-1].detail


def test_lost_doorbells_are_rung_again_only_when_the_queue_is_empty(audit, tmp_path):
    instance_id = received(audit, tmp_path)
    rung: list[int] = []
    time.sleep(0.05)
    assert ring_again(audit, rung.append, older_than=timedelta(0), waiting_in_queue=4) == 0
    assert ring_again(audit, rung.append, older_than=timedelta(0), waiting_in_queue=None) == 0
    assert ring_again(audit, rung.append, older_than=timedelta(hours=1), waiting_in_queue=0) == 0
    assert ring_again(audit, rung.append, older_than=timedelta(0), waiting_in_queue=0) == 1
    assert rung == [instance_id]
    assert row(audit, instance_id).events[-1].detail == (
        "queued again: the broker held no message for it")
