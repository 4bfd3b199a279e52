"""Receiving over DICOM from real dcmtk peers, against `boneage serve` in a subprocess.

Every test runs twice: on the embedded SQLite default and on PostgreSQL (schema by Alembic).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pynetdicom import AE, _config

from service.audit.tables import AssociationOutcome, InstanceStatus
from service.spool import sha256_file
from tests.databases import only_backend
from tests.factory import CR_IMAGE_STORAGE, CT_IMAGE_STORAGE, write_image
from tests.peers import (
    associations,
    echoscu,
    instances,
    storescu,
    tool,
    wait_for,
    wait_rows,
    wait_status,
)

pytestmark = pytest.mark.dcmtk  # dcmtk's command-line tools are the peers here


def test_echo_and_store_are_spooled_and_audited(tmp_path, backend, start_service):
    service = start_service()
    assert echoscu(service.port).returncode == 0

    source = tmp_path / "in" / "dx.dcm"
    sent = write_image(source, seed=1)
    result = storescu(service.port, source)
    assert result.returncode == 0, result.stderr

    sessions = backend.sessions(service.var_dir)
    [row] = wait_status(sessions, 1, InstanceStatus.REJECTED)
    assert row.sop_instance_uid == sent.SOPInstanceUID
    assert row.study_instance_uid == sent.StudyInstanceUID
    assert row.patient_id == "TEST-0001" and row.accession_number == "ACC0001"
    assert row.modality == "DX" and row.version == 1 and row.response_status == 0
    assert [event.status for event in row.events] == [
        InstanceStatus.RECEIVED, InstanceStatus.QUEUED, InstanceStatus.PROCESSING,
        InstanceStatus.REJECTED,
    ]
    # A ramp-and-noise test pattern is no radiograph: the pipeline ran and said so, with a
    # reason code (its flat histogram fails before the hand check is asked).
    assert row.status_reason == "SYNTHETIC_PATTERN"

    spooled = Path(row.spool_path)
    assert spooled.is_relative_to(service.var_dir / "spool" / "incoming")
    assert sha256_file(spooled) == row.sha256 == spooled.stem
    assert row.size_bytes == spooled.stat().st_size
    received = pydicom.dcmread(spooled)
    assert received.SOPInstanceUID == sent.SOPInstanceUID
    assert np.array_equal(received.pixel_array, sent.pixel_array)

    echo_assoc, store_assoc = associations(sessions)
    assert echo_assoc.calling_ae == "ECHOSCU" and echo_assoc.outcome is AssociationOutcome.RELEASED
    assert store_assoc.calling_ae == "MODALITY" and store_assoc.peer_address == "127.0.0.1"
    assert store_assoc.ended_at is not None
    # SIGTERM is a clean stop that says so; and no patient identifiers in the log.
    process = service.process
    service.stop()
    assert process.returncode == 0
    assert service.log().rstrip().endswith("worker.cli: stopped")
    assert "TEST-0001" not in service.log() and "Test^Hand" not in service.log()


def _encode_j2k_lossless(plain: Path, encoded: Path) -> None:
    """Debian's dcmtk has no JPEG 2000 codec: pydicom encodes with openjpeg instead."""
    ds = pydicom.dcmread(plain)
    ds.compress("1.2.840.10008.1.2.4.90", encoding_plugin="pylibjpeg")
    ds.save_as(encoded)


# (how to encode, storescu's option proposing only that syntax, the syntax)
ENCODINGS = [
    (("dcmcjpls",), "--propose-jls-lossless", "1.2.840.10008.1.2.4.80"),
    (("dcmcjpeg",), "--propose-lossless", "1.2.840.10008.1.2.4.70"),
    (("dcmcrle",), "--propose-rle", "1.2.840.10008.1.2.5"),
    (("dcmconv", "+td"), "--propose-deflated", "1.2.840.10008.1.2.1.99"),
    (("dcmconv", "+ti"), "--propose-implicit", "1.2.840.10008.1.2"),
    (_encode_j2k_lossless, "--propose-j2k-lossless", "1.2.840.10008.1.2.4.90"),
]


# Transfer syntax handling does not touch the audit backend: the embedded default is enough.
@only_backend("sqlite")
@pytest.mark.parametrize(("encoder", "propose", "syntax"), ENCODINGS, ids=[e[2] for e in ENCODINGS])
def test_transfer_syntaxes_are_accepted_as_sent(
    tmp_path, backend, start_service, encoder, propose, syntax
):
    service = start_service()
    plain = tmp_path / "plain.dcm"
    sent = write_image(plain, seed=2, sop_class=CR_IMAGE_STORAGE, modality="CR")
    encoded = tmp_path / "encoded.dcm"
    if callable(encoder):
        encoder(plain, encoded)
    else:
        subprocess.run([tool(encoder[0]), *encoder[1:], str(plain), str(encoded)], check=True)
    # Propose only the file's own syntax, so we know it travelled encoded that way.
    result = storescu(service.port, encoded, extra=(propose,))
    assert result.returncode == 0, result.stderr
    [row] = wait_status(backend.sessions(service.var_dir), 1, InstanceStatus.REJECTED)
    assert row.transfer_syntax_uid == syntax
    received = pydicom.dcmread(row.spool_path)
    assert str(received.file_meta.TransferSyntaxUID) == syntax
    assert np.array_equal(received.pixel_array, sent.pixel_array)  # lossless round trip


# Negotiation-level behaviour, here and in the other-SOP-class and association-limit tests:
# the same on either audit backend (their rows are checked on both by the other tests).
@only_backend("sqlite")
def test_allow_list_rejects_unknown_callers_and_records_them(tmp_path, backend, start_service):
    service = start_service(BONEAGE_ALLOWED_CALLERS="PACS@127.0.0.1, MODALITY")
    sessions = backend.sessions(service.var_dir)

    def associate(ae_title: str, source: str) -> bool:
        ae = AE(ae_title=ae_title)
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", service.port, ae_title="BONEAGE",
                             bind_address=(source, 0))
        accepted = assoc.is_established
        if accepted:
            assoc.release()
        else:
            assert assoc.is_rejected, "expected an A-ASSOCIATE-RJ, not an abort"
        return accepted

    assert not associate("INTRUDER", "127.0.0.2")
    assert not associate("PACS", "127.0.0.2")  # right AE, wrong address
    assert associate("PACS", "127.0.0.1")
    assert associate("MODALITY", "127.0.0.2")  # AE without an address pin

    rows = wait_rows(lambda: associations(sessions), 4, lambda r: all(a.ended_at for a in r))
    outcomes = [(a.calling_ae, a.peer_address, a.outcome) for a in rows]
    assert outcomes == [
        ("INTRUDER", "127.0.0.2", AssociationOutcome.REJECTED),
        ("PACS", "127.0.0.2", AssociationOutcome.REJECTED),
        ("PACS", "127.0.0.1", AssociationOutcome.RELEASED),
        ("MODALITY", "127.0.0.2", AssociationOutcome.RELEASED),
    ]
    assert "not in BONEAGE_ALLOWED_CALLERS" in rows[0].reason
    assert "rejected" in service.log()


@only_backend("sqlite")
def test_other_sop_classes_are_refused_at_negotiation(tmp_path, backend, start_service):
    service = start_service()
    ct = tmp_path / "ct.dcm"
    write_image(ct, sop_class=CT_IMAGE_STORAGE, modality="CT")
    result = storescu(service.port, ct, extra=("--required",))
    assert result.returncode != 0
    assert "no acceptable presentation contexts" in result.stderr.lower()
    sessions = backend.sessions(service.var_dir)
    [assoc] = wait_rows(lambda: associations(sessions), 1, lambda r: r[0].ended_at)
    assert "CT Image Storage" in (assoc.refused_contexts or "")
    assert instances(sessions) == []
    assert echoscu(service.port).returncode == 0  # still serving


def _send_raw(port: int, path: Path, sop_class: str) -> int:
    """Send a file's bytes as they are (like a buggy modality would): no re-encoding."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title="BUGGY")
        ae.add_requested_context(sop_class, "1.2.840.10008.1.2.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="BONEAGE")
        assert assoc.is_established
        status = assoc.send_c_store(path)
        assoc.release()
        return int(status.Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False


def test_corrupt_data_gets_failure_status_audit_row_and_quarantine(
    tmp_path, backend, start_service
):
    service = start_service()
    good = tmp_path / "good.dcm"
    write_image(good, seed=3)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[: len(data) - 4000])
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(data[:400] + bytes(range(256)) * 8)  # meta intact, dataset is noise

    dx = "1.2.840.10008.5.1.4.1.1.1.1"
    assert _send_raw(service.port, truncated, dx) == 0xC210
    assert _send_raw(service.port, garbage, dx) in (0xC210, 0xC212)
    assert _send_raw(service.port, good, dx) == 0x0000  # still serving

    sessions = backend.sessions(service.var_dir)
    rows = wait_rows(lambda: instances(sessions), 3,
                     lambda r: r[2].status is InstanceStatus.REJECTED)
    truncated_row, garbage_row, good_row = rows
    assert truncated_row.status is InstanceStatus.INVALID
    assert "truncated" in truncated_row.status_reason
    assert truncated_row.response_status == 0xC210
    assert Path(truncated_row.spool_path).is_relative_to(service.var_dir / "spool" / "quarantine")
    assert Path(truncated_row.spool_path).exists()
    assert garbage_row.status is InstanceStatus.INVALID and garbage_row.status_reason
    assert good_row.version == 1


def test_duplicates_are_recorded_not_reprocessed_and_changes_are_versions(
    tmp_path, backend, start_service
):
    service = start_service()
    first = tmp_path / "first.dcm"
    sent = write_image(first, seed=4)
    changed = tmp_path / "changed.dcm"
    write_image(changed, seed=5, sop_instance_uid=sent.SOPInstanceUID,
                study_instance_uid=sent.StudyInstanceUID)

    assert storescu(service.port, first).returncode == 0
    assert storescu(service.port, first).returncode == 0
    assert storescu(service.port, changed).returncode == 0

    sessions = backend.sessions(service.var_dir)
    rows = wait_rows(lambda: instances(sessions), 3, lambda r: r[0].status is r[2].status
                     is InstanceStatus.REJECTED)
    original, duplicate, version2 = rows
    assert duplicate.status is InstanceStatus.DUPLICATE
    assert duplicate.duplicate_of_id == original.id and duplicate.version is None
    assert [e.status for e in duplicate.events] == [InstanceStatus.DUPLICATE]
    assert version2.version == 2 and version2.sha256 != original.sha256
    assert "new version 2" in version2.events[0].detail


@only_backend("sqlite")  # a disk check, before the DB
def test_low_disk_is_refused_with_a700_and_recorded(tmp_path, backend, start_service):
    service = start_service(BONEAGE_MIN_FREE_DISK_MB=str(10**9))
    source = tmp_path / "dx.dcm"
    write_image(source)
    result = storescu(service.port, source, extra=("-v",))
    assert "Refused: OutOfResources" in result.stdout + result.stderr
    [row] = wait_status(backend.sessions(service.var_dir), 1, InstanceStatus.REFUSED)
    assert row.response_status == 0xA700
    assert "BONEAGE_MIN_FREE_DISK_MB" in row.status_reason
    assert list((service.var_dir / "spool" / "incoming").rglob("*.dcm")) == []
    assert echoscu(service.port).returncode == 0


def test_sigkill_after_ack_requeues_exactly_once(tmp_path, backend, start_service):
    # Hold processing (0 runner threads) so the kill lands between ack and processing.
    service = start_service(BONEAGE_EMBEDDED_WORKERS="0")
    source = tmp_path / "dx.dcm"
    write_image(source, seed=6)
    assert storescu(service.port, source).returncode == 0
    sessions = backend.sessions(service.var_dir)
    wait_status(sessions, 1, InstanceStatus.QUEUED)
    service.kill()

    service.start(BONEAGE_EMBEDDED_WORKERS="1")
    [row] = wait_status(sessions, 1, InstanceStatus.REJECTED)
    queued = [e.detail for e in row.events if e.status is InstanceStatus.QUEUED]
    assert queued == ["handed off after receipt", "re-queued at start-up"]
    assert [e.status for e in row.events].count(InstanceStatus.PROCESSING) == 1


def test_spooled_file_without_audit_row_is_adopted_at_start_up(tmp_path, backend, start_service):
    """A crash between the spool rename and the audit commit leaves a file and no row."""
    service = start_service(BONEAGE_EMBEDDED_WORKERS="0")
    service.stop()
    source = tmp_path / "orphan.dcm"
    sent = write_image(source, seed=7)
    sha = sha256_file(source)
    target = service.var_dir / "spool" / "incoming" / sha[:2] / f"{sha}.dcm"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())

    service.start(BONEAGE_EMBEDDED_WORKERS="1")
    sessions = backend.sessions(service.var_dir)
    [row] = wait_status(sessions, 1, InstanceStatus.REJECTED)
    assert row.sop_instance_uid == sent.SOPInstanceUID and row.association_id is None
    assert "adopted from the spool" in row.events[0].detail


@only_backend("sqlite")
def test_association_limit_rejects_transiently_and_says_why(tmp_path, backend, start_service):
    service = start_service(BONEAGE_MAX_ASSOCIATIONS="1")
    ae = AE(ae_title="FIRST")
    ae.add_requested_context("1.2.840.10008.1.1")
    held = ae.associate("127.0.0.1", service.port, ae_title="BONEAGE")
    assert held.is_established
    try:
        second = AE(ae_title="SECOND")
        second.add_requested_context("1.2.840.10008.1.1")
        refused = second.associate("127.0.0.1", service.port, ae_title="BONEAGE")
        assert refused.is_rejected
        assert refused.acceptor.primitive.result == 0x02  # rejected-transient: retry later
    finally:
        held.release()
    # The slot frees when the service's thread for FIRST ends, a moment after the release;
    # a caller told "rejected-transient" retries, and so does this one.
    echoes = []
    wait_for(lambda: echoes.append(echoscu(service.port)) or echoes[-1].returncode == 0, timeout=10)
    sessions = backend.sessions(service.var_dir)
    count = 2 + len(echoes)
    rows = wait_rows(lambda: associations(sessions), count, lambda r: all(a.ended_at for a in r))
    second_row = next(a for a in rows if a.calling_ae == "SECOND")
    assert second_row.outcome is AssociationOutcome.REJECTED
    assert "rejected by the DICOM layer" in second_row.reason
