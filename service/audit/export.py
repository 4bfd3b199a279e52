"""The audit answers (service.audit.queries) as flat rows and CSV text, for `boneage audit
--format csv` and the API's `?format=csv`: one rendering, so both export the same columns."""

from __future__ import annotations

import csv
import io
from typing import Any

LIST_COLUMNS = ("id", "received_at", "status", "status_reason", "calling_ae", "modality",
                "accession_number", "patient_id", "study_instance_uid", "model_version",
                "bone_age_months", "confidence", "size_bytes", "response_status")
HISTORY_COLUMNS = ("at", "what", "status", "detail")
STATS_COLUMNS = ("group", "key", "value")


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def history_rows(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """An instance's story (queries.instance_detail) in time order, one row per thing that
    happened to it: association, status changes, assessments, deliveries, reviews."""
    rows = []
    if detail["association"]:
        a = detail["association"]
        rows.append({"at": a["requested_at"], "what": "association", "status": a["outcome"],
                     "detail": f"{a['calling_ae']} from {a['peer']}"})
    rows += [{"at": e["at"], "what": "status", "status": e["status"], "detail": e["detail"]}
             for e in detail["events"]]
    for a in detail["assessments"]:
        failed = [g["code"] for g in a["gates"] if not g["passed"]]
        rows.append({"at": a["at"], "what": "assessment", "status": a["status"],
                     "detail": f"{a['model']}: bone age {a['bone_age_months']}"
                     + (f"; failed {','.join(failed)}" if failed else "")})
    rows += [{"at": d["delivered_at"] or d["created_at"], "what": f"delivery {d['kind']}",
              "status": d["status"],
              "detail": f"delivery {d['id']} to {d['destination']} ({d['attempts']} attempts)"}
             for d in detail["deliveries"]]
    rows += [{"at": r["at"], "what": "review", "status": r["verdict"],
              "detail": f"{r['reader']}: {r['reader_bone_age_months']:g} months"}
             for r in detail["reviews"]]
    return sorted(rows, key=lambda row: row["at"])


def stats_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The nested stats (queries.audit_stats) flattened to (group, key, value) rows."""
    rows = [{"group": "bytes_received", "key": "total", "value": stats["bytes_received"]}]
    for group in ("instances_by_status", "associations_by_outcome", "rejection_reasons",
                  "assessments_by_reason", "deliveries_by_status", "agreement"):
        rows += [{"group": group, "key": key, "value": value}
                 for key, value in sorted(stats[group].items())]
    for stage, figures in stats["latency_seconds"].items():
        rows += [{"group": f"latency_seconds.{stage}", "key": key, "value": value}
                 for key, value in figures.items()]
    rows += [{"group": "failing_destinations", "key": entry["destination"],
              "value": f"pending {entry['pending']}, dead {entry['dead']}: "
                       f"{entry['last_error']}"} for entry in stats["failing_destinations"]]
    return rows
