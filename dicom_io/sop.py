"""SOP classes and transfer syntaxes we accept, and the DIMSE statuses we answer with.

Only projection radiography (CR, DX) and Secondary Capture are accepted: anything else a PACS
routes to us is refused at negotiation, before a byte of pixel data crosses the wire.
"""

from __future__ import annotations

from pydicom import uid

CR_IMAGE_STORAGE = uid.UID("1.2.840.10008.5.1.4.1.1.1")
DX_FOR_PRESENTATION = uid.UID("1.2.840.10008.5.1.4.1.1.1.1")
DX_FOR_PROCESSING = uid.UID("1.2.840.10008.5.1.4.1.1.1.1.1")
SECONDARY_CAPTURE = uid.UID("1.2.840.10008.5.1.4.1.1.7")

STORAGE_SOP_CLASSES: tuple[uid.UID, ...] = (
    CR_IMAGE_STORAGE,
    DX_FOR_PRESENTATION,
    DX_FOR_PROCESSING,
    SECONDARY_CAPTURE,
)

# Uncompressed first: when a peer offers several, pynetdicom takes our order of preference.
TRANSFER_SYNTAXES: tuple[uid.UID, ...] = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.RLELossless,
)


def sop_class_name(value: str) -> str:
    """A readable name for a SOP class UID, for logs and the audit DB."""
    name = uid.UID(value).name
    return name if name and name != value else value


class StoreStatus:
    """C-STORE response statuses (PS3.4 Annex B.2.3) with the meaning we give them."""

    SUCCESS = 0x0000
    # Out of resources: the sender should keep the instance and retry later.
    OUT_OF_RESOURCES = 0xA700  # spool disk below the configured minimum
    CANNOT_RECORD = 0xA701  # spooled, but the audit DB could not be written
    INTERNAL_ERROR = 0xA7FF  # unexpected failure on our side; retry is safe
    # The data itself is wrong: resending the same bytes will not help.
    SOP_CLASS_MISMATCH = 0xA900  # dataset's SOP Class UID differs from the request's
    CANNOT_PARSE = 0xC210  # not decodable as a DICOM dataset
    BAD_IDENTIFIERS = 0xC212  # SOP Instance/Study/Series UID missing or not matching
