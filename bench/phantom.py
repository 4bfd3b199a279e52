"""Phantom rendering speed on one core: images per second at 1024 px (median of 5 runs)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantom import render


def main(size: int = 1024, per_run: int = 20, runs: int = 5) -> None:
    render(100, True, 0, size=size)  # warm up
    rates = []
    for run in range(runs):
        started = time.perf_counter()
        for index in range(per_run):
            render(12 + (index * 11) % 216, index % 2 == 0, run * per_run + index, size=size)
        rates.append(per_run / (time.perf_counter() - started))
    print(f"phantom render {size}px: median {statistics.median(rates):.1f} img/s "
          f"(runs: {', '.join(f'{r:.1f}' for r in rates)})")


if __name__ == "__main__":
    main()
