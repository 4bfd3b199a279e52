"""The architecture's rules, checked on the source: imports go one way (DESIGN.md), modules
stay small, and no function in the service's rooms grows past a screen."""

from __future__ import annotations

import ast
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
