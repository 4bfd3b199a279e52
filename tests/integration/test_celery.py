"""The Celery path: `boneage serve` sends instance ids through a real Redis to `boneage worker`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from dicom_io.content import Outcome
from service.audit.tables import AssessmentRecord, Instance, InstanceStatus
from tests.databases import only_backend
from tests.factory import phantom_file, write_image
from tests.peers import (
    ServiceProcess,
    WorkerProcess,
    boneage_command,
    instances,
    storescu,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.dcmtk  # dcmtk's command-line tools are the peers here


@contextmanager
def celery_worker(service: ServiceProcess, broker_url: str, name: str = "worker",
                  **env: str) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(service, broker_url, name, **env).start()
    try:
        yield worker
    finally:
        worker.stop()


def test_celery_worker_processes_what_serve_receives(
    tmp_path, backend, start_service, redis_server
):
    service = start_service(BONEAGE_BROKER_URL=redis_server.url)
    sessions = backend.sessions(service.var_dir)
    with celery_worker(service, redis_server.url):
        source = tmp_path / "dx.dcm"
        write_image(source, seed=11)
        assert storescu(service.port, source).returncode == 0
        [row] = wait_status(sessions, 1, InstanceStatus.REJECTED)
        # A hand phantom is assessed in the prefork child: the networks load after the fork.
        assert storescu(service.port, phantom_file(tmp_path / "hand")).returncode == 0
        rejected, assessed = wait_status(sessions, 2, InstanceStatus.REJECTED,
                                         InstanceStatus.ASSESSED)
    assert [e.status for e in row.events] == [
        InstanceStatus.RECEIVED, InstanceStatus.QUEUED, InstanceStatus.PROCESSING,
        InstanceStatus.REJECTED,
    ]
    assert rejected.status_reason == "SYNTHETIC_PATTERN"  # the ramp test pattern
    assert assessed.status is InstanceStatus.ASSESSED
    with sessions() as session:
        [record] = session.scalars(select(AssessmentRecord).where(
            AssessmentRecord.instance_id == assessed.id)).all()
    assert record.status is Outcome.ASSESSED and 0 < record.bone_age_months < 240


def test_broker_down_keeps_the_instance_and_a_restart_resumes_it(
    tmp_path, backend, start_service, redis_server
):
    broker_url = redis_server.url
    redis_server.stop()  # the broker is down when the PACS sends
    service = start_service(BONEAGE_BROKER_URL=broker_url)
    source = tmp_path / "dx.dcm"
    write_image(source, seed=12)
    assert storescu(service.port, source).returncode == 0  # stored and acked regardless
    sessions = backend.sessions(service.var_dir)
    [row] = wait_status(sessions, 1, InstanceStatus.RECEIVED)
    assert any("hand-off failed" in (e.detail or "") for e in row.events)
    service.stop()

    redis_server.start()  # broker back, on a new free port
    service.start(BONEAGE_BROKER_URL=redis_server.url)
    with celery_worker(service, redis_server.url):
        [row] = wait_status(sessions, 1, InstanceStatus.REJECTED)
    assert [e.detail for e in row.events if e.status is InstanceStatus.QUEUED][-1] == (
        "re-queued at start-up"
    )
    assert len(instances(sessions)) == 1


LEASE = {"BONEAGE_LEASE_S": "6", "BONEAGE_RECONCILE_EVERY_S": "1"}


@only_backend("postgres")  # shared by the processes
def test_a_worker_killed_mid_inference_is_replaced_within_the_lease(
    tmp_path, backend, start_service, redis_server
):
    service = start_service(BONEAGE_BROKER_URL=redis_server.url, **LEASE)
    sessions = backend.sessions(service.var_dir)
    doomed = WorkerProcess(service, redis_server.url, "doomed").start()
    try:
        # A full-size phantom: long enough in the network to be caught mid-inference.
        source = phantom_file(tmp_path / "hand", size=2304)
        assert storescu(service.port, source).returncode == 0

        def processing() -> Instance | None:
            rows = instances(sessions)
            held = rows and rows[0].status is InstanceStatus.PROCESSING
            return rows[0] if held and rows[0].lease_holder else None

        victim = wait_for(processing, timeout=120, interval=0.02)
        doomed.kill()
    finally:
        doomed.stop()
    killed_at = time.monotonic()
    with celery_worker(service, redis_server.url, "rescuer"):
        [row] = wait_status(sessions, 1, InstanceStatus.ASSESSED)
        status = boneage_status(service, redis_server.url)
    print(f"killed mid-inference; assessed by another worker "
          f"{time.monotonic() - killed_at:.1f} s later (lease 6 s)")
    assert row.claims == 2
    expired = [e.detail for e in row.events if e.status is InstanceStatus.QUEUED][-1]
    assert expired == f"worker {victim.lease_holder} stopped renewing its lease; queued again"
    pickers = [e.detail for e in row.events if e.status is InstanceStatus.PROCESSING]
    assert len(pickers) == 2 and pickers[1] != pickers[0]
    with sessions() as session:
        assert len(session.scalars(select(AssessmentRecord)).all()) == 1
    # What `boneage status` tells the on-call engineer afterwards.
    assert status["queue_waiting"] == 0 and status["unfinished"] == 0
    assert status["instances"]["ASSESSED"] == 1
    by_name = {w["name"]: w for w in status["workers"]}
    assert not by_name[victim.lease_holder]["alive"]
    [rescuer] = [w for w in status["workers"] if w["alive"]]
    assert rescuer["processed"] == 1 and rescuer["kind"] == "celery" and rescuer["leases"] == []


def boneage_status(service: ServiceProcess, broker_url: str) -> dict:
    run = subprocess.run([*boneage_command("status"), "--json"], capture_output=True, text=True,
                         env={**service.env, "BONEAGE_BROKER_URL": broker_url}, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@only_backend("postgres")  # shared by the processes
def test_a_worker_takes_waiting_instances_into_one_batch(
    tmp_path, backend, start_service, redis_server
):
    """BONEAGE_BATCH_SIZE (8 by default on CUDA; set here, on the CPU): instances waiting
    when the worker starts go through in batches, each assessed once, with the same result
    as alone."""
    service = start_service(BONEAGE_BROKER_URL=redis_server.url)
    sessions = backend.sessions(service.var_dir)
    hands = [phantom_file(tmp_path / f"h{seed}", age=40.0 + 30 * seed, seed=seed, size=512)
             for seed in range(4)]
    ramp = tmp_path / "ramp.dcm"
    write_image(ramp, seed=5)
    assert storescu(service.port, *hands, ramp).returncode == 0  # queued, nobody consuming
    wait_status(sessions, 5, InstanceStatus.QUEUED)
    with celery_worker(service, redis_server.url, BONEAGE_BATCH_SIZE="4"):
        rows = wait_status(sessions, 5, InstanceStatus.ASSESSED, InstanceStatus.REJECTED)
    picked = [e.detail for row in rows for e in row.events
              if e.status is InstanceStatus.PROCESSING]
    assert len(picked) == 5 and any("in a batch of 4" in d for d in picked), picked
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AssessmentRecord)) == 5
    assert sorted(r.status.value for r in rows) == ["ASSESSED"] * 4 + ["REJECTED"]
