"""Chaos in CI, at reduced size: 100 instances through serve + 2 Celery workers + Redis +
PostgreSQL + Orthanc while workers are SIGKILLed, Redis restarted and the receiver restarted
between associations (tests/chaos.py; bench/chaos.py runs 1,000)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.audit.session import make_engine, make_session_factory, upgrade
from service.audit.tables import AssessmentRecord, Instance
from tests.chaos import FAULTS, run_chaos
from tests.peers import PHANTOM_MODEL_ENV

pytestmark = pytest.mark.dcmtk


def test_every_acknowledged_instance_gets_one_sr_and_one_image_through_chaos(
        tmp_path, postgres_database):
    engine = make_engine(postgres_database)
    upgrade(engine)
    report = run_chaos(tmp_path, postgres_database, 100, per_association=10,
                       env=PHANTOM_MODEL_ENV)
    print("\n" + "\n".join(report.lines()))
    acknowledged = len(report.acknowledged)
    assert acknowledged == report.sent == 100
    assert set(report.faults) == set(FAULTS)
    assert report.statuses == {"ASSESSED": acknowledged}
    assert report.deliveries == {"DELIVERED": 2 * acknowledged}
    assert len(report.sr_in_pacs) == len(report.sc_in_pacs) == acknowledged
    assert set(report.sr_in_pacs.values()) == set(report.sc_in_pacs.values()) == {1}
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(AssessmentRecord)) == acknowledged
        assert session.scalar(select(func.count(func.distinct(Instance.sop_instance_uid)))) \
            == acknowledged
    engine.dispose()
