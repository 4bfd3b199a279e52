"""Network cost per configuration: parameters, GMACs at its input size, CPU latency p50 at
batch 1 with 2 threads, and peak RSS. Each configuration runs in a fresh subprocess so that
peak RSS is its own.

    .venv/bin/python bench/model.py [--runs 7] [name ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(name: str, runs: int) -> dict[str, float | str]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models import build

    torch.set_num_threads(2)
    net = build(name).eval()
    size = net.config.input_size
    image, sex = torch.rand(1, 1, size, size), torch.tensor([1])
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            net(image, sex)
        net(image, sex)  # warm up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            net(image, sex)
            times.append((time.perf_counter() - started) * 1000)
    return {
        "name": name,
        "input": size,
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "gmacs": counter.get_total_flops() / 2e9,
        "p50_ms": statistics.median(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.runs)))
        return
    from models import CONFIGS

    names = args.names or list(CONFIGS)
    print(f"{'network':<11} {'input':>5} {'params M':>9} {'GMACs':>7} {'p50 ms':>8} {'RSS MB':>7}")
    for name in names:
        result = subprocess.run(
            [sys.executable, __file__, "--one", name, "--runs", str(args.runs)],
            capture_output=True, text=True, check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{row['name']:<11} {row['input']:>5} {row['params_m']:>9.2f} {row['gmacs']:>7.2f} "
              f"{row['p50_ms']:>8.1f} {row['peak_rss_mb']:>7.0f}")


if __name__ == "__main__":
    main()
