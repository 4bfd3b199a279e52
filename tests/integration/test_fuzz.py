"""Fuzzing `boneage serve` end to end: 1,000 mutated datasets and files over real
associations, then malformed connections, while the embedded workers process what was stored.

Checked: the service never dies or stops answering; every answered C-STORE has an audit row
with the same status, every failure status is a DICOM failure with a reason; nothing that was
stored ends FAILED (a FAILED instance is an exception of ours, which is what fuzzing hunts).
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from models.phantom import render
from service.audit.tables import UNFINISHED, Instance, InstanceStatus
from service.phantoms import phantom_dicom
from tests.databases import only_backend
from tests.factory import write_image
from tests.fuzz import fuzz_stores
from tests.hostile import flood
from tests.peers import PHANTOM_MODEL_ENV, ServiceProcess, echoscu, wait_for

pytestmark = pytest.mark.dcmtk

STORES = 1000


# The embedded SQLite default: its one writer is what concurrent associations contend for.
@only_backend("sqlite")
def test_a_thousand_mutants_leave_an_audit_row_each_and_no_crash(tmp_path, backend):
    seeds = [tmp_path / "phantom.dcm", tmp_path / "ramp.dcm"]
    phantom_dicom(render(120.0, False, 9, size=768), "0009").save_as(
        seeds[0], enforce_file_format=True)
    write_image(seeds[1], rows=300, columns=240, seed=3)
    service = ServiceProcess(tmp_path / "var", {**backend.env, **PHANTOM_MODEL_ENV,
                                                    "BONEAGE_EMBEDDED_WORKERS": "2"})
    service.start()
    try:
        result = fuzz_stores(service.port, [seeds[0], seeds[1], seeds[0]], STORES,
                             workdir=tmp_path / "mutants", seed=7)
        connections = flood(service.port, 200, concurrency=10, seed=7, hold_s=0.5)
        assert service.process.poll() is None, service.log()[-3000:]
        assert echoscu(service.port).returncode == 0
        sessions = backend.sessions(service.var_dir)

        def settled() -> bool:
            with sessions() as session:
                return not session.scalar(select(func.count()).select_from(Instance)
                                          .where(Instance.status.in_(UNFINISHED)))

        wait_for(settled, timeout=900, interval=1.0)
        with sessions() as session:
            rows = session.execute(select(Instance.response_status, Instance.status,
                                          Instance.status_reason)).all()
    finally:
        service.stop()
    audited = Counter(status for status, _, _ in rows)
    finals = Counter(status.value for _, status, _ in rows)
    reasons = Counter(reason for _, status, reason in rows if status is InstanceStatus.REJECTED)
    print(f"\nfuzz: {STORES} mutants in {result.elapsed_s:.0f} s over {result.associations} "
          f"associations; answered {dict(result.statuses)}, unsendable {result.unsendable}, "
          f"no response {result.no_response}, slowest C-STORE {result.slowest_s:.2f} s; "
          f"{sum(connections.sent.values())} malformed connections")
    print(f"audit: {dict(finals)}; rejections {dict(reasons.most_common(8))}")
    assert result.answered + result.unsendable + result.no_response == STORES
    assert result.answered >= STORES // 2 and result.no_response == 0
    assert audited == result.statuses  # one audit row per answered store, same status
    for (status, final, reason) in rows:
        if status != 0:
            assert status >= 0xA000 and reason, (hex(status), final, reason)
    assert InstanceStatus.FAILED.value not in finals, finals
