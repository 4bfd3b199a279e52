"""The admin surface without servers: the API's settings rules, reviews and agreement on a
real (SQLite) audit DB migrated by Alembic, percentiles, and the CSV rows."""

from __future__ import annotations

import csv
import io

import pytest

from dicom_io.content import Outcome
from service.audit import queries
from service.audit.export import STATS_COLUMNS, stats_rows, to_csv
from service.audit.session import make_engine, make_session_factory, transaction, upgrade
from service.audit.tables import AssessmentRecord, Instance, InstanceStatus
from service.reviews import ReviewError, ReviewRequest, record_review
from service.settings import SettingsError, load_settings

TOKEN = "a-long-enough-admin-token"


def test_api_binds_to_loopback_unless_a_token_is_set():
    assert load_settings().effective_api_bind == "127.0.0.1"
    assert load_settings(admin_token=TOKEN).effective_api_bind == "0.0.0.0"
    with pytest.raises(SettingsError, match="BONEAGE_API_BIND"):
        load_settings(api_bind="0.0.0.0")
    assert load_settings(api_bind="127.0.0.2").effective_api_bind == "127.0.0.2"


def test_a_bad_token_is_refused_without_being_echoed():
    with pytest.raises(SettingsError) as raised:
        load_settings(admin_token="short-secret")
    assert "BONEAGE_ADMIN_TOKEN" in str(raised.value) and "short-secret" not in str(raised.value)


def test_tls_listener_needs_its_certificate(tmp_path):
    with pytest.raises(SettingsError, match="BONEAGE_TLS_CERT_FILE"):
        load_settings(tls_port=2762)
    with pytest.raises(SettingsError, match="must differ"):
        load_settings(tls_port=11112, tls_cert_file=tmp_path, tls_key_file=tmp_path)


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    return make_session_factory(engine)


def assessed(session, bone_age: float | None, outcome: Outcome = Outcome.ASSESSED) -> int:
    row = Instance(sop_instance_uid=f"1.2.{bone_age}", sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                   status=InstanceStatus(outcome.value))
    session.add(row)
    session.flush()
    session.add(AssessmentRecord(instance_id=row.id, model_name="m", model_version="1",
                                 weights_sha256="0" * 64, synthetic=False, status=outcome,
                                 bone_age_months=bone_age))
    session.flush()
    return row.id


def test_reviews_keep_the_ai_value_and_the_newest_one_counts(sessions):
    with transaction(sessions) as session:
        first, second = assessed(session, 100.0), assessed(session, 50.0)
        rejected = assessed(session, None, Outcome.REJECTED)
    with transaction(sessions) as session:
        accepted = record_review(session, first, ReviewRequest("dr.a"), "cli")
        assert accepted.verdict.value == "ACCEPTED" and accepted.reader_bone_age_months == 100.0
        record_review(session, second, ReviewRequest("dr.a", 80.0), "cli")
        record_review(session, second, ReviewRequest("dr.b", 60.0, "second look"), "cli")
    for bad, why in ((ReviewRequest("dr.a", 241.0), "0..240"), (ReviewRequest(" "), "reader"),
                     (ReviewRequest("dr.a"), "no bone age")):
        with pytest.raises(ReviewError, match=why), transaction(sessions) as session:
            record_review(session, rejected if why == "no bone age" else first, bad, "cli")
    with pytest.raises(LookupError), transaction(sessions) as session:
        record_review(session, 999, ReviewRequest("dr.a"), "cli")
    with sessions() as session:
        agreement = queries.agreement(session)
        assert session.get(AssessmentRecord, 2).bone_age_months == 50.0  # untouched
    # Newest per instance: accepted (0 months off) and 60 vs 50 (10 months off).
    assert agreement == {"reviewed": 2, "accepted_share": 0.5, "mae_months": 5.0,
                         "within_12_months_share": 1.0}


def test_percentiles_and_the_stats_csv(sessions):
    assert queries.percentiles([]) == {"count": 0, "p50": None, "p90": None, "p99": None}
    figures = queries.percentiles([float(v) for v in range(1, 101)])
    assert figures["count"] == 100 and figures["p50"] == pytest.approx(50.5)
    assert figures["p99"] == pytest.approx(99.01)
    with transaction(sessions) as session:
        assessed(session, 90.0)
    with sessions() as session:
        stats = queries.audit_stats(session)
    rows = list(csv.DictReader(io.StringIO(to_csv(stats_rows(stats), STATS_COLUMNS))))
    assert {"group": "instances_by_status", "key": "ASSESSED", "value": "1"} in rows
    assert any(row["group"] == "latency_seconds.received_to_delivered" for row in rows)
