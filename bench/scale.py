"""Distributed mode on this machine: `boneage serve` + Celery workers + Redis + PostgreSQL,
with dcmtk's storescp as the PACS that receives the SR and report image.

Prints, measured side by side in one run:
- throughput: images/min with 1 worker, then with 2, and their ratio (a burst of --count
  full-size phantoms each, from first receipt to last result recorded);
- per-task queue overhead: median time from QUEUED to PROCESSING for single images sent to
  idle workers (what carrying an id through Redis costs);
- recovery: a worker SIGKILLed mid-inference, seconds until another worker recorded the result;
- memory of each worker process (the Celery pool children, which hold the model): RSS, PSS
  (shared pages split among the processes sharing them) and USS (pages only it holds),
  after the images above.

    .venv/bin/python bench/scale.py [--count 50] [--size 2304]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.audit.session import make_engine, make_session_factory, upgrade
from service.audit.tables import Instance, InstanceEvent, InstanceStatus, Worker
from tests.chaos import make_phantoms
from tests.databases import fresh_postgres_database
from tests.peers import (
    RedisServer,
    ServiceProcess,
    WorkerProcess,
    free_port,
    process_memory,
    storescu,
    tool,
)

DONE = (InstanceStatus.ASSESSED, InstanceStatus.REJECTED, InstanceStatus.FAILED)


def wait_done(sessions, total: int, timeout: float = 1800) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            done = session.scalar(select(func.count()).select_from(Instance)
                                  .where(Instance.status.in_(DONE)))
        if done >= total:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{total} instances not finished in {timeout} s")


def burst_rate(sessions, service: ServiceProcess, paths: list[Path], before: int) -> float:  # type: ignore[no-untyped-def]
    assert storescu(service.port, *paths).returncode == 0
    wait_done(sessions, before + len(paths))
    with sessions() as session:
        rows = session.execute(select(Instance.received_at, Instance.status_changed_at)
                               .where(Instance.id > before)).all()
    span = (max(r[1] for r in rows) - min(r[0] for r in rows)).total_seconds()
    with sessions() as session:
        events = session.execute(select(InstanceEvent.instance_id, InstanceEvent.status,
                                        InstanceEvent.at).where(InstanceEvent.instance_id > before)
                                 .order_by(InstanceEvent.id)).all()
    started: dict[int, float] = {}
    busy = []
    for instance_id, status, at in events:
        if status is InstanceStatus.PROCESSING:
            started[instance_id] = at.timestamp()
        elif status in DONE and instance_id in started:
            busy.append(at.timestamp() - started[instance_id])
    print(f"  burst of {len(rows)}: {span:.0f} s; in a worker (PROCESSING -> result) median "
          f"{statistics.median(busy):.2f} s, max {max(busy):.2f} s")
    return 60 * len(rows) / span


def queue_overhead(sessions, service: ServiceProcess, paths: list[Path], before: int) -> float:  # type: ignore[no-untyped-def]
    for index, path in enumerate(paths):
        assert storescu(service.port, path).returncode == 0
        wait_done(sessions, before + index + 1)
    with sessions() as session:
        events = session.execute(select(InstanceEvent.instance_id, InstanceEvent.status,
                                        InstanceEvent.at).where(
            InstanceEvent.instance_id > before,
            InstanceEvent.status.in_((InstanceStatus.QUEUED, InstanceStatus.PROCESSING)))
            .order_by(InstanceEvent.id)).all()
    first: dict[int, dict[InstanceStatus, float]] = {}
    for instance_id, status, at in events:
        first.setdefault(instance_id, {}).setdefault(status, at.timestamp())
    return statistics.median(t[InstanceStatus.PROCESSING] - t[InstanceStatus.QUEUED]
                             for t in first.values())


def recovery(sessions, service: ServiceProcess, path: Path, before: int) -> float:  # type: ignore[no-untyped-def]
    assert storescu(service.port, path).returncode == 0
    while True:
        with sessions() as session:
            row = session.get(Instance, before + 1)
            if row is not None and row.status is InstanceStatus.PROCESSING and row.lease_holder:
                holder = row.lease_holder
                break
        time.sleep(0.02)
    child = int(holder.split(":")[1])
    os.killpg(os.getpgid(child), signal.SIGKILL)
    killed = time.monotonic()
    wait_done(sessions, before + 1, timeout=300)
    return time.monotonic() - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--size", type=int, default=2304)
    args = parser.parse_args()
    with fresh_postgres_database("boneage_scale") as url:
        engine = make_engine(url)
        upgrade(engine)
        with tempfile.TemporaryDirectory() as temp:
            run(Path(temp), url, make_session_factory(engine), args.count, args.size)
        engine.dispose()


def run(root: Path, url: str, sessions, count: int, size: int) -> None:  # type: ignore[no-untyped-def]
    paths = make_phantoms(root / "phantoms", 2 * count + 14, size=size)
    pacs_port = free_port()
    (root / "pacs").mkdir()
    pacs = subprocess.Popen([tool("storescp"), "-aet", "PACS", "-od", str(root / "pacs"),
                             str(pacs_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    redis = RedisServer(root)
    service = ServiceProcess(root / "var", {
        "BONEAGE_DATABASE_URL": url, "BONEAGE_BROKER_URL": redis.url,
        "BONEAGE_DESTINATIONS": f"PACS@127.0.0.1:{pacs_port}", "BONEAGE_LEASE_S": "10",
        "BONEAGE_RECONCILE_EVERY_S": "1"}).start()
    workers = [WorkerProcess(service, redis.url, "w0").start()]
    try:
        # Warm: each burst starts with its workers loaded and past their first inference.
        warm = queue_overhead(sessions, service, paths[2 * count + 10:2 * count + 11], 0)
        one = burst_rate(sessions, service, paths[:count], 1)
        # Two workers on one host share its cores: each gets cores / 2 threads (the setting
        # BONEAGE_TORCH_THREADS; with the default of all cores each, 4 threads on 2 cores
        # ran 4x slower than one worker, measured here on 2026-12-02).
        threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
        workers.pop().stop()
        workers += [WorkerProcess(service, redis.url, name,
                                  BONEAGE_TORCH_THREADS=threads).start() for name in ("w1", "w2")]
        queue_overhead(sessions, service, paths[2 * count + 11:2 * count + 13], count + 1)
        two = burst_rate(sessions, service, paths[count:2 * count], count + 3)
        overhead = queue_overhead(sessions, service, paths[2 * count:2 * count + 10],
                                  2 * count + 3)
        with sessions() as session:
            pids = [w.pid for w in session.scalars(select(Worker).where(
                Worker.stopped_at.is_(None), Worker.kind == "celery"))]
        measured = [(pid, process_memory(pid)) for pid in pids]
        recovered = recovery(sessions, service, paths[-1], 2 * count + 13)
    finally:
        for worker in workers:
            worker.stop()
        service.stop()
        redis.stop()
        pacs.terminate()
    print(f"first image through a cold worker (QUEUED -> PROCESSING): {warm:.1f} s")
    print(f"throughput ({size} px phantoms, {count} per burst, results sent to storescp): "
          f"1 worker {one:.1f} images/min, 2 workers {two:.1f} images/min, ratio "
          f"{two / one:.2f} (2 workers with {threads} torch thread(s) each, 1 worker with all "
          f"{len(os.sched_getaffinity(0))} cores)")
    print(f"per-task queue overhead (QUEUED -> PROCESSING, idle workers, median of 10): "
          f"{overhead * 1000:.0f} ms")
    print(f"recovery after SIGKILL mid-inference (lease 10 s): {recovered:.1f} s")
    for pid, figures in measured:
        print(f"worker process {pid} after the images above: {figures} MB")


if __name__ == "__main__":
    main()
