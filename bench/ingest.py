"""Ingest throughput: our C-STORE SCP vs dcmtk's storescp, side by side in one run.

Sends N DX instances of about 10 MB over one association with dcmtk's storescu, alternately to
`boneage serve` (spool + fsync + audit commit before each response) and to `storescp` writing
to disk (no fsync, no database), for several rounds; prints per-round figures, medians and
the ratio. Each round sends new SOP Instance UIDs to us, so nothing takes the duplicate path.

    .venv/bin/python bench/ingest.py [--count 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.factory import write_image
from tests.peers import ServiceProcess, free_port, port_open, tool, wait_for

ROWS, COLUMNS = 2560, 2048  # 16-bit: 10.5 MB of pixel data


def make_set(directory: Path, count: int, seed: int) -> list[Path]:
    files = []
    for index in range(count):
        path = directory / f"dx{index:03d}.dcm"
        write_image(path, rows=ROWS, columns=COLUMNS, seed=seed * 1000 + index)
        files.append(path)
    return files


def send(port: int, aec: str, files: list[Path]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [tool("storescu"), "-aet", "BENCH", "-aec", aec, "127.0.0.1", str(port),
         *map(str, files)],
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {aec} failed: {result.stderr[-2000:]}")
    return elapsed


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="boneage-bench-"))
    try:
        print(f"generating {args.rounds} x {args.count} DX instances of {ROWS}x{COLUMNS} ...")
        sets = [make_set(work / f"set{r}", args.count, r) for r in range(args.rounds)]
        megabytes = sum(p.stat().st_size for p in sets[0]) / 1e6

        ours = ServiceProcess(work / "var", {"BONEAGE_EMBEDDED_WORKERS": "2"}).start()
        storescp_port = free_port()
        storescp_out = work / "storescp-out"
        storescp_out.mkdir()
        storescp = subprocess.Popen(
            [tool("storescp"), "--output-directory", str(storescp_out), "-aet", "STORESCP",
             str(storescp_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(storescp_port), 20)
        try:
            ours_s, theirs_s = [], []
            for round_index, files in enumerate(sets):
                # Alternate who goes first so page cache and CPU warmth favour neither.
                order = ["ours", "storescp"] if round_index % 2 == 0 else ["storescp", "ours"]
                for who in order:
                    if who == "ours":
                        ours_s.append(send(ours.port, "BONEAGE", files))
                    else:
                        theirs_s.append(send(storescp_port, "STORESCP", files))
                        shutil.rmtree(storescp_out)
                        storescp_out.mkdir()
                print(f"round {round_index + 1}: boneage {args.count / ours_s[-1]:6.1f} img/s, "
                      f"storescp {args.count / theirs_s[-1]:6.1f} img/s")
            assert ours.process is not None
            rss = peak_rss_mb(ours.process.pid)
        finally:
            storescp.terminate()
            ours.stop()

        ours_median, theirs_median = statistics.median(ours_s), statistics.median(theirs_s)
        print()
        print(f"{args.count} instances x {megabytes / args.count:.1f} MB over one association, "
              f"{args.rounds} rounds, medians; {os.cpu_count()} CPUs")
        print(f"{'receiver':<10} {'img/s':>8} {'MB/s':>8}")
        for name, seconds in (("boneage", ours_median), ("storescp", theirs_median)):
            print(f"{name:<10} {args.count / seconds:8.1f} {megabytes / seconds:8.1f}")
        print(f"ratio boneage/storescp (throughput): {theirs_median / ours_median:.2f}")
        print(f"boneage serve peak RSS: {rss:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
