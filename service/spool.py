"""The on-disk spool: received instances, quarantined bytes, and files still being received.

Layout under `var/spool/`:
  partial/     files pynetdicom is writing right now; leftovers at start-up were never acked
  incoming/    accepted instances, content-addressed: `<sha[:2]>/<sha256>.dcm`
  quarantine/  bytes that could not be parsed, kept for inspection, same naming

Content addressing makes storing idempotent (the same bytes always land on the same name) and
keeps patient identifiers out of file names. A file is only visible under `incoming/` once its
bytes and its directory entry are on disk (fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial = root / "partial"
        self.incoming = root / "incoming"
        self.quarantine = root / "quarantine"

    def ensure(self) -> Spool:
        for directory in (self.partial, self.incoming, self.quarantine):
            directory.mkdir(parents=True, exist_ok=True)
        return self

    def free_mb(self) -> float:
        return shutil.disk_usage(self.root).free / (1024 * 1024)

    def path_for(self, sha256: str, *, quarantined: bool = False) -> Path:
        base = self.quarantine if quarantined else self.incoming
        return base / sha256[:2] / f"{sha256}.dcm"

    def keep(self, source: Path, sha256: str, *, quarantined: bool = False) -> Path:
        """Durably place `source` under its content address; the source is consumed.

        Same filesystem: fsync + rename. Otherwise: copy to `partial/`, fsync, rename.
        """
        target = self.path_for(sha256, quarantined=quarantined)
        if target.exists():
            source.unlink(missing_ok=True)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        _fsync_path(source)
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            staging = self.partial / f"{sha256}.copy"
            shutil.copyfile(source, staging)
            _fsync_path(staging)
            os.replace(staging, target)
            source.unlink(missing_ok=True)
        _fsync_path(target.parent, directory=True)
        return target

    def clear_partial(self) -> int:
        """Drop half-received files left by a crash; their senders never got a success."""
        removed = 0
        for leftover in self.partial.glob("*"):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    def stored_files(self) -> list[Path]:
        return sorted(self.incoming.glob("*/*.dcm"))
