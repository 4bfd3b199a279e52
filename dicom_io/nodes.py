"""DICOM nodes as operators write them: AE titles and `AE@host:port` addresses.

One `Destination` type serves the settings (parsed from `BONEAGE_DESTINATIONS`), the audit
rows (stored as its string) and the SCU (which connects to it), so the form a PACS admin types
is parsed in one place and printed back the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# PS3.5 6.2: AE titles are up to 16 characters of the default repertoire, no backslash or controls.
_AE_TITLE = re.compile(r"^[ -\[\]-~]{1,16}$")
_ADDRESS = re.compile(r"(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d+)")


def check_ae_title(value: str) -> str:
    """The AE title without padding; ValueError when it is not one."""
    value = value.strip()
    if not _AE_TITLE.match(value):
        raise ValueError(
            f"{value!r} is not a valid AE title (1-16 printable characters, no backslash)"
        )
    return value


@dataclass(frozen=True)
class Destination:
    """A DICOM node results are sent to (C-STORE SCP)."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        """`AE@host:port` (an IPv6 host in brackets), the form PACS admins already use in
        their routing tables."""
        match = _ADDRESS.fullmatch(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not of the form AE@host:port")
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise ValueError(f"{text!r}: port {port} is outside 1-65535")
        return cls(check_ae_title(match["ae"]), match["host"].strip("[]"), port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"
