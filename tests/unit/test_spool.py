"""The spool: content-addressed, idempotent, crash leftovers cleaned."""

from __future__ import annotations

from service.spool import Spool, sha256_file


def test_keep_is_content_addressed_and_idempotent(tmp_path):
    spool = Spool(tmp_path / "spool").ensure()
    first = spool.partial / "a.tmp"
    first.write_bytes(b"same bytes")
    sha = sha256_file(first)
    kept = spool.keep(first, sha)
    assert kept == spool.incoming / sha[:2] / f"{sha}.dcm" and kept.read_bytes() == b"same bytes"
    assert not first.exists()

    again = spool.partial / "b.tmp"
    again.write_bytes(b"same bytes")
    assert spool.keep(again, sha) == kept and not again.exists()
    assert spool.stored_files() == [kept]


def test_quarantine_is_separate(tmp_path):
    spool = Spool(tmp_path / "spool").ensure()
    bad = spool.partial / "bad.tmp"
    bad.write_bytes(b"not dicom")
    kept = spool.keep(bad, sha256_file(bad), quarantined=True)
    assert kept.is_relative_to(spool.quarantine) and spool.stored_files() == []


def test_clear_partial_drops_unacked_leftovers(tmp_path):
    spool = Spool(tmp_path / "spool").ensure()
    (spool.partial / "tmp1.dcm").write_bytes(b"half")
    assert spool.clear_partial() == 1 and list(spool.partial.iterdir()) == []
