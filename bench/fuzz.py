"""Fuzzing `boneage serve` at scale: mutated datasets and files over real associations, then a
flood of malformed connections while a legitimate peer sends C-ECHO.

Prints: C-STORE statuses and the audit rows that match them, the slowest C-STORE round trip
and how many took longer than 2 s (a hang), final statuses after processing, and the C-ECHO
latencies during the flood. The issue's aim: no crash, no hang over 2 s, every answered store
audited with its status, every echo answered within 2 s.

    .venv/bin/python bench/fuzz.py --stores 100000 --connections 1000 [--workers 2]

`--workers 0` holds processing (receipt path only), which is what makes 100,000 fit in an
evening on 2 cores; with workers, stored mutants are processed too and checked for FAILED.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantom import render
from service.phantoms import phantom_dicom
from tests.factory import write_image
from tests.fuzz import fuzz_stores
from tests.hostile import flood
from tests.peers import ServiceProcess, echoscu

UNFINISHED = ("RECEIVED", "QUEUED", "PROCESSING")


def seeds(directory: Path) -> list[Path]:
    phantom, ramp = directory / "phantom.dcm", directory / "ramp.dcm"
    phantom_dicom(render(120.0, False, 9, size=768), "0009").save_as(
        phantom, enforce_file_format=True)
    write_image(ramp, rows=300, columns=240, seed=3)
    return [phantom, ramp, phantom]


def audit_rows(database: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT response_status, status FROM instances"))


def echo_during_flood(port: int, connections: int, seed: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    done = threading.Event()
    thread = threading.Thread(target=lambda: (flood(port, connections, concurrency=25,
                                                    seed=seed), done.set()))
    thread.start()
    while not done.is_set() or len(latencies) < 3:
        started = time.monotonic()
        failures += echoscu(port).returncode != 0
        latencies.append(time.monotonic() - started)
    thread.join()
    return latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # pydicom warns about every mutant it parses
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        env = {"BONEAGE_EMBEDDED_WORKERS": str(args.workers)}
        service = ServiceProcess(root / "var", env).start()
        try:
            result = fuzz_stores(service.port, seeds(root), args.stores, workdir=root / "m",
                                 seed=args.seed, per_association=200, dimse_timeout_s=30)
            latencies, echo_failures = echo_during_flood(service.port, args.connections,
                                                         args.seed)
            alive = service.process.poll() is None and echoscu(service.port).returncode == 0
            database = root / "var" / "audit.sqlite3"
            while args.workers and any(s in UNFINISHED for _, s in audit_rows(database)):
                time.sleep(2)
            rows = audit_rows(database)
        finally:
            service.stop()
    audited = Counter(code for code, _ in rows)
    print(f"stores: {args.stores} mutants in {result.elapsed_s:.0f} s "
          f"({args.stores / result.elapsed_s:.0f}/s) over {result.associations} associations")
    print(f"  answered {result.answered}: {dict(sorted(result.statuses.items()))}")
    print(f"  unsendable (mutated past the sender's encoder) {result.unsendable}, "
          f"no response {result.no_response}")
    print(f"  slowest C-STORE {result.slowest_s:.2f} s")
    print(f"  audit rows {len(rows)}, statuses match the answers: {audited == result.statuses}")
    print(f"  final statuses {dict(Counter(s for _, s in rows))}")
    print(f"flood: {args.connections} malformed connections; C-ECHO during it: "
          f"{len(latencies)}, failed {echo_failures}, median {statistics.median(latencies):.2f} s, "
          f"max {max(latencies):.2f} s, over 2 s {sum(t > 2 for t in latencies)}")
    print(f"service alive and answering afterwards: {alive}")


if __name__ == "__main__":
    main()
