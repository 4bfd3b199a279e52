"""TLS contexts for DICOM (PS3.15 Annex B, the secure transport connection profiles):
outbound for sending results, inbound for the second listener. TLS 1.2 is the floor both
ways, as the BCP 195 profile asks."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(ca_file: Path | None, cert_file: Path | None = None,
                   key_file: Path | None = None) -> ssl.SSLContext:
    """Verifies the destination against `ca_file` (the system's CAs when None) and presents
    our certificate when one is given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


def server_context(cert_file: Path, key_file: Path,
                   ca_file: Path | None = None) -> ssl.SSLContext:
    """Our certificate for the TLS listener; with `ca_file`, a client must present a
    certificate signed by that CA or the handshake fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
