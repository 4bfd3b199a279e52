"""Chaos at full size: 1,000 phantom radiographs through `boneage serve` + 2 Celery workers +
Redis + PostgreSQL + Orthanc, with a worker SIGKILLed, Redis restarted or the receiver
restarted after every association (tests/chaos.py). Prints the counts: acknowledged, audit
statuses, deliveries, SR and report images in Orthanc per study, lease expiries re-queued.

    .venv/bin/python bench/chaos.py [--count 1000] [--per-association 10]

Needs PostgreSQL (BONEAGE_TEST_POSTGRES_URL, default the local `test` database): a fresh
database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.audit.session import make_engine, upgrade
from tests.chaos import run_chaos
from tests.databases import fresh_postgres_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--per-association", type=int, default=10)
    args = parser.parse_args()
    with fresh_postgres_database("boneage_chaos") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        with tempfile.TemporaryDirectory() as temp:
            report = run_chaos(Path(temp), url, args.count,
                               per_association=args.per_association, timeout_s=3600)
        print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
