"""Give the heap back after each image.

A 2304-px radiograph passes through several float32 copies (decode, window, gates, the
heatmap at full size, the report image): 20 MB each. Python frees them at once, but glibc
keeps the freed pages in its arenas, so a worker's resident set stays at its largest image's
peak for good. `malloc_trim(0)` returns them to the system. Measured by bench/worker_memory.py
(a Celery-like forked child with the model, 2304-px phantoms): see the README's benchmarks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_freed_memory() -> bool:
    """True when glibc was asked to return freed heap pages (False elsewhere, e.g. musl)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
