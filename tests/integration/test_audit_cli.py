"""`boneage audit list|show|stats`: what an admin sees after a PACS sent something."""

from __future__ import annotations

import json
import subprocess

import pytest

from service.audit.tables import InstanceStatus
from tests.factory import write_image
from tests.peers import boneage_command, storescu, wait_status

pytestmark = pytest.mark.dcmtk  # dcmtk's command-line tools are the peers here


def run_cli(service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(boneage_command(*args), env=service.env, capture_output=True,
                          text=True, timeout=60)


def test_audit_commands_report_what_arrived(tmp_path, backend, start_service):
    service = start_service()
    source = tmp_path / "dx.dcm"
    sent = write_image(source, seed=31)
    assert storescu(service.port, source).returncode == 0
    assert storescu(service.port, source).returncode == 0  # duplicate
    wait_status(backend.sessions(service.var_dir), 2, InstanceStatus.REJECTED,
                InstanceStatus.DUPLICATE)

    listed = [json.loads(line) for line in run_cli(service, "audit", "list", "--json").stdout
              .splitlines()]
    assert [row["status"] for row in listed] == ["DUPLICATE", "REJECTED"]  # newest first
    assert listed[1]["calling_ae"] == "MODALITY" and listed[1]["response_status"] == "0x0000"

    shown = json.loads(run_cli(service, "audit", "show", str(listed[1]["id"]), "--json").stdout)
    assert shown["sop_instance_uid"] == sent.SOPInstanceUID
    assert [e["status"] for e in shown["events"]] == ["RECEIVED", "QUEUED", "PROCESSING",
                                                      "REJECTED"]
    [assessment] = shown["assessments"]
    assert assessment["status"] == "REJECTED" and assessment["reason"] == shown["status_reason"]
    # The shipped default is the research model trained on real radiographs.
    assert assessment["synthetic"] is False and assessment["gates"][0]["name"] == "sop_class"
    failed = [g for g in assessment["gates"] if not g["passed"]]
    assert failed[0]["code"] == assessment["reason"]
    assert shown["deliveries"] == []  # no destination configured

    stats = json.loads(run_cli(service, "audit", "stats", "--json").stdout)
    assert stats["instances_by_status"] == {"REJECTED": 1, "DUPLICATE": 1}
    assert stats["associations_by_outcome"] == {"RELEASED": 2}
    assert sum(stats["assessments_by_reason"].values()) == 1

    table = run_cli(service, "audit", "list", "--status", "REJECTED")
    assert table.returncode == 0 and "REJECTED" in table.stdout and "DUPLICATE" not in table.stdout
