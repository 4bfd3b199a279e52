"""Deterministic UIDs for our outputs.

A result's UIDs are derived from (source UID, model version, output kind), so re-sending the
result of the same image by the same model replaces the earlier copy in PACS instead of
adding a second one, and a new model version produces new instances beside the old.
"""

from __future__ import annotations

from pydicom.uid import UID, generate_uid


def derive_uid(source_uid: str, model_version: str, kind: str) -> UID:
    """A 2.25 UID (UUID-derived, no registered root needed) from a SHA-512 of the inputs."""
    return generate_uid(prefix=None, entropy_srcs=["boneage-pacs", str(source_uid),
                                                   model_version, kind])
