"""Where a worker's resident set goes: imports, the model, per-image buffers.

1. Imports, each measured in a fresh interpreter on top of the ones before it (torch first):
   what `import X` adds to RSS.
2. A Celery-like worker: this parent imports what `boneage worker`'s parent imports
   (worker.tasks, and so torch), then forks children as the prefork pool does; each child
   loads the networks after the fork and assesses --count full-size phantoms. RSS, PSS
   (shared pages split among the processes sharing them) and USS (pages only the child
   holds) after the model, after 1 and 10 images and at the end, without and with
   service.memory.release_freed_memory after each image, side by side in one run.

    .venv/bin/python bench/worker_memory.py [--count 100] [--size 2304]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers import process_memory

# triton and torch._dynamo before torchvision: torchvision.ops.roi_align imports torch._dynamo
# (and it triton) at module level, and that is most of what "import torchvision" costs.
IMPORTS = ["torch", "triton", "torch._dynamo", "torchvision", "timm", "monai", "pydicom",
           "pynetdicom", "highdicom", "sqlalchemy", "celery", "service.pipeline", "worker.tasks"]


def memory(pid: int) -> str:
    figures = process_memory(pid) or {"rss": 0, "pss": 0, "uss": 0}
    return (f"RSS {figures['rss']:4d} MB, PSS {figures['pss']:4d} MB, "
            f"USS {figures['uss']:4d} MB")


def import_costs() -> None:
    code = ("import os, sys, importlib\n"
            "rss = lambda: int([l for l in open(f'/proc/{os.getpid()}/status') "
            "if l.startswith('VmRSS')][0].split()[1]) // 1024\n"
            f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
            "before = rss(); print(f'interpreter {before} MB')\n"
            f"for name in {IMPORTS!r}:\n"
            "    importlib.import_module(name); now = rss()\n"
            "    print(f'+ {name:18s} {now - before:4d} MB (total {now} MB)'); before = now\n")
    print("RSS added by each import, in order:")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)


def child(paths: list[Path], count: int, trim: bool) -> None:
    from service.gates import GateThresholds
    from service.memory import release_freed_memory
    from service.pipeline import shared_assessor

    assessor = shared_assessor(None, GateThresholds(), "cpu")
    label = "with malloc_trim" if trim else "without        "
    print(f"  {label} model loaded:  {memory(os.getpid())}", flush=True)
    for index in range(count):
        assessor.assess_path(paths[index % len(paths)])
        if trim:
            release_freed_memory()
        if index + 1 in (1, 10, count):
            print(f"  {label} after {index + 1:3d}:    {memory(os.getpid())}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--size", type=int, default=2304)
    args = parser.parse_args()
    import_costs()
    import torch

    torch.set_num_threads(2)
    import worker.tasks  # noqa: F401  (what the Celery parent holds before it forks)
    from tests.chaos import make_phantoms

    with tempfile.TemporaryDirectory() as temp:
        paths = make_phantoms(Path(temp), 4, size=args.size)
        print(f"\nparent (worker.tasks imported): {memory(os.getpid())}")
        print(f"forked children, {args.count} phantoms of {args.size} px each:")
        for trim in (False, True):
            pid = os.fork()
            if pid == 0:
                try:
                    child(paths, args.count, trim)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
