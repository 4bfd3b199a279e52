"""The architecture's rules, checked on the source: imports go one way (DESIGN.md), modules
stay small, and no function in the service's rooms grows past a screen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("dicom_io", "models", "service", "worker")
# What each room may import of ours (besides itself).
ALLOWED = {"dicom_io": set(), "models": set(), "service": {"dicom_io", "models"},
           "worker": {"dicom_io", "models", "service"}}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


def imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        rooms |= {name.split(".")[0] for name in names if name.split(".")[0] in OURS}
    return rooms


def test_imports_go_one_way():
    wrong = [f"{path.relative_to(ROOT)} imports {sorted(extra)}"
             for room in OURS for path in modules(room)
             if (extra := imported_rooms(path) - ALLOWED[room] - {room})]
    assert wrong == []


def test_modules_and_functions_stay_small():
    long_modules = [f"{path.relative_to(ROOT)}: {lines}" for room in OURS
                    for path in modules(room)
                    if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    long_functions = []
    for room in ("dicom_io", "service", "worker"):
        for path in modules(room):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long_functions.append(f"{path.relative_to(ROOT)}:{node.name} {length}")
    assert long_modules == [] and long_functions == []


def test_operator_commands_and_the_receiver_start_without_the_networks():
    """torch, monai and timm take seconds to import (five on two quiet cores) and hold most of
    a gigabyte: an admin's `boneage audit list`, `boneage api`, and `boneage serve` in
    distributed mode (receiver and deliverer, the assessing left to Celery workers) must not
    pay for them. The Celery worker does import them, in its prefork parent, so the pool
    processes share those pages."""
    code = ("import sys\n"
            "import worker.cli, worker.app, service.cli_audit, service.api.app, service.server\n"
            "import service.processing, service.outbox\n"
            "print(sorted(m for m in ('torch', 'monai', 'timm') if m in sys.modules))\n"
            "import worker.tasks\n"
            "print(sorted(m for m in ('torch', 'monai', 'timm') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "['monai', 'timm', 'torch']"]
