"""C-STORE SCU: send stored files to one destination over one association.

It knows nothing of retries or the audit DB: it reports, per file, the DIMSE status or why the
association could not be made, and the caller decides what to do. Outbound TLS is used when an
`ssl.SSLContext` is given.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (
    Comprehensive3DSRStorage,
    SecondaryCaptureImageStorage,
)
from pynetdicom.status import STATUS_SUCCESS, STATUS_WARNING, code_to_category

from dicom_io.nodes import Destination

log = logging.getLogger(__name__)

OUTPUT_SOP_CLASSES = (Comprehensive3DSRStorage, SecondaryCaptureImageStorage)


@dataclass(frozen=True)
class SendResult:
    path: Path
    status: int | None  # DIMSE status; None when nothing was sent
    error: str | None  # why, in words, when it did not succeed

    @property
    def ok(self) -> bool:
        return stored(self.status)


def stored(status: int | None) -> bool:
    """A C-STORE response that means the peer has the object: success, or a warning
    (coercion, elements discarded), as PS3.4 Annex B and pynetdicom class them."""
    return status is not None and code_to_category(status) in {STATUS_SUCCESS, STATUS_WARNING}


def send_files(paths: Sequence[Path], destination: Destination, *, calling_ae: str,
               tls: ssl.SSLContext | None = None, timeout: float = 30.0) -> list[SendResult]:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for sop_class in OUTPUT_SOP_CLASSES:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    tls_args = None if tls is None else (tls, destination.host)
    try:
        assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title,
                             tls_args=tls_args)
    except Exception as exc:  # socket errors surface here on some platforms
        return [SendResult(p, None, f"association failed: {exc}") for p in paths]
    if not assoc.is_established:
        why = "association rejected" if assoc.is_rejected else "destination unreachable"
        return [SendResult(p, None, f"{why} ({destination.ae_title}@{destination.host}:"
                                    f"{destination.port})") for p in paths]
    results = []
    try:
        for path in paths:
            try:
                status = assoc.send_c_store(dcmread(path))
            except Exception as exc:
                results.append(SendResult(path, None, f"{type(exc).__name__}: {exc}"))
                continue
            code = int(status.Status) if status and "Status" in status else None
            error = None if stored(code) else (
                "no response (association dropped)" if code is None
                else f"C-STORE status 0x{code:04X}")
            results.append(SendResult(path, code, error))
            if not assoc.is_established:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    sent = {r.path for r in results}
    results += [SendResult(p, None, "association ended before sending") for p in paths
                if p not in sent]
    return results


def listening(destination: Destination, *, calling_ae: str, timeout: float = 5.0) -> bool:
    """True when a DICOM listener answers an A-ASSOCIATE-RQ there, accepting or rejecting it
    (a readiness probe: a rejection by an allow-list still proves the SCP is up). A C-ECHO is
    sent when the association is accepted, and the association released."""
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(Verification)
    try:
        assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    except Exception:
        return False
    if assoc.is_established:
        try:
            status = assoc.send_c_echo()
            return bool(status) and int(status.Status) == 0
        finally:
            assoc.release()
    return bool(assoc.is_rejected)
