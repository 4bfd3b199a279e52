"""Chaos for distributed mode: `boneage serve` + 2 Celery workers + Redis + PostgreSQL, with
Orthanc as the PACS that receives the results. Phantom radiographs are sent in associations;
between associations one fault is injected in turn: a worker SIGKILLed (and a new one
started), Redis restarted (every message it held is gone), the receiver restarted (SIGTERM,
then SIGKILL the next time). At the end every acknowledged instance must have exactly one SR
and one report image in Orthanc, and the audit DB must agree.

Used by tests/e2e/test_chaos.py (100 instances) and bench/chaos.py (1,000).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.phantom import render
from service.audit.session import make_engine, make_session_factory
from service.audit.tables import Delivery, DeliveryStatus, Instance, InstanceEvent, InstanceStatus
from service.phantoms import phantom_dicom
from tests.orthanc import Orthanc
from tests.peers import RedisServer, ServiceProcess, WorkerProcess, free_port, storescu, wait_for

FAULTS = ("kill a worker", "restart redis", "restart serve (SIGTERM)", "kill a worker",
          "restart serve (SIGKILL)")
FAST = {
    "BONEAGE_LEASE_S": "6", "BONEAGE_RECONCILE_EVERY_S": "1",
    "BONEAGE_REQUEUE_QUEUED_AFTER_S": "5",
    "BONEAGE_DELIVERY_RETRY_INITIAL_S": "0.5", "BONEAGE_DELIVERY_RETRY_MAX_S": "2",
}


@dataclass
class ChaosReport:
    sent: int = 0
    acknowledged: list[str] = field(default_factory=list)  # source SOP Instance UIDs
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    sr_in_pacs: Counter[str] = field(default_factory=Counter)  # per source study
    sc_in_pacs: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    lease_requeues: int = 0
    doorbells_rung_again: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        studies = len(self.acknowledged)
        one_each = sum(self.sr_in_pacs[s] == 1 and self.sc_in_pacs[s] == 1
                       for s in self.sr_in_pacs | self.sc_in_pacs)
        return [
            f"sent {self.sent}, acknowledged {studies}, in {self.seconds:.0f} s",
            f"faults: {dict(self.faults)}",
            f"audit: {dict(self.statuses)}; deliveries {dict(self.deliveries)}; "
            f"lease expiries re-queued {self.lease_requeues}; "
            f"lost messages re-sent {self.doorbells_rung_again}",
            f"Orthanc: {sum(self.sr_in_pacs.values())} SR, {sum(self.sc_in_pacs.values())} "
            f"report images; studies with exactly one of each: {one_each} of {studies}",
        ]


def make_phantoms(directory: Path, count: int, size: int = 768) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"dx{index:05d}.dcm"
        phantom_dicom(render(40 + (index * 37) % 150, index % 2 == 0, 1000 + index, size=size),
                      f"C{index:05d}").save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


class Cluster:
    def __init__(self, workdir: Path, database_url: str, env: dict[str, str]) -> None:
        self.redis = RedisServer(workdir)
        self.service = ServiceProcess(workdir / "var", {
            "BONEAGE_DATABASE_URL": database_url, "BONEAGE_BROKER_URL": self.redis.url, **FAST,
            **env})
        self.orthanc = Orthanc(workdir / "orthanc", self.service.port, dicom_port=free_port())
        self.service.env["BONEAGE_DESTINATIONS"] = self.orthanc.destination
        self.workers: list[WorkerProcess] = []
        self._names = itertools.count()

    def start(self) -> Cluster:
        self.orthanc.start()
        self.service.start()
        for _ in range(2):
            self.add_worker()
        return self

    def add_worker(self) -> None:
        self.workers.append(WorkerProcess(self.service, self.redis.url,
                                          f"worker{next(self._names)}").start())

    def inject(self, fault: str) -> None:
        if fault == "kill a worker":
            self.workers.pop(0).kill()
            self.add_worker()
        elif fault == "restart redis":
            self.redis.stop()
            self.redis.start(same_port=True)
        elif fault == "restart serve (SIGTERM)":
            self.service.stop()
            self.service.start()
        elif fault == "restart serve (SIGKILL)":
            self.service.kill()
            self.service.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.service.stop()
        self.orthanc.stop()
        self.redis.stop()


def _finished(sessions: sessionmaker[Session], expected: int) -> bool:
    with sessions() as session:
        statuses = session.scalars(select(Instance.status)).all()
        pending = session.scalars(select(Delivery.id).where(
            Delivery.status != DeliveryStatus.DELIVERED)).all()
    done = sum(s in (InstanceStatus.ASSESSED, InstanceStatus.REJECTED) for s in statuses)
    return done >= expected and not pending


def run_chaos(workdir: Path, database_url: str, count: int, *, per_association: int = 10,
              timeout_s: float = 900, env: dict[str, str] | None = None) -> ChaosReport:
    report = ChaosReport()
    paths = make_phantoms(workdir / "phantoms", count)
    sessions = make_session_factory(make_engine(database_url))
    cluster = Cluster(workdir, database_url, env or {}).start()
    started = time.monotonic()
    try:
        faults = itertools.cycle(FAULTS)
        for start in range(0, count, per_association):
            batch = paths[start:start + per_association]
            report.sent += len(batch)
            if storescu(cluster.service.port, *batch).returncode == 0:
                report.acknowledged += [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                                        for p in batch]
            fault = next(faults)
            cluster.inject(fault)
            report.faults[fault] += 1
        wait_for(lambda: _finished(sessions, len(report.acknowledged)), timeout_s, 1.0)
        report.seconds = time.monotonic() - started
        _count_results(report, cluster.orthanc, sessions)
    finally:
        cluster.stop()
    return report


def _count_results(report: ChaosReport, orthanc: Orthanc,
                   sessions: sessionmaker[Session]) -> None:
    for modality, counter in (("SR", report.sr_in_pacs), ("OT", report.sc_in_pacs)):
        for tags in orthanc.by_modality(modality):
            counter[tags["StudyInstanceUID"]] += 1
    with sessions() as session:
        report.statuses = Counter(s.value for s in session.scalars(select(Instance.status)))
        report.deliveries = Counter(s.value for s in session.scalars(select(Delivery.status)))
        details = session.scalars(select(InstanceEvent.detail)).all()
    report.lease_requeues = sum("stopped renewing its lease" in (d or "") for d in details)
    report.doorbells_rung_again = sum("broker held no message" in (d or "") for d in details)
