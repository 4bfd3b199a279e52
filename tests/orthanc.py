"""A real Orthanc (Debian package) on free loopback ports, as the hospital's PACS.

A Lua `OnStoredInstance` forwards every CR/DX it stores to the bone-age service, as a PACS
auto-routing rule would; results come back by C-STORE and are read over Orthanc's REST API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.peers import free_port, need, stop_process, wait_for

ORTHANC = "/usr/sbin/Orthanc"
AE_TITLE = "ORTHANC"

# The demo PACS that docker/ ships: the tests run its very routing rule and configuration.
DOCKER_ORTHANC = Path(__file__).resolve().parents[1] / "docker" / "orthanc"


class Orthanc:
    def __init__(self, workdir: Path, boneage_port: int, boneage_ae: str = "BONEAGE",
                 dicom_port: int | None = None) -> None:
        need(shutil.which(ORTHANC) is not None or Path(ORTHANC).exists(),
             "orthanc (Debian package orthanc) not installed")
        self.workdir = workdir
        self.dicom_port = dicom_port or free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DOCKER_ORTHANC / "route.lua", workdir / "route.lua")
        # docker/'s demo-PACS configuration, moved onto free loopback ports and a temp dir.
        config = json.loads((DOCKER_ORTHANC / "orthanc.json").read_text())
        config.update({
            "Name": "boneage-test-pacs",
            "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "RemoteAccessAllowed": False,
            "DicomModalities": {"boneage": [boneage_ae, "127.0.0.1", boneage_port]},
            "LuaScripts": [str(workdir / "route.lua")],
            "StableAge": 1,
        })
        (workdir / "orthanc.json").write_text(json.dumps(config, indent=2))

    @property
    def destination(self) -> str:
        return f"{AE_TITLE}@127.0.0.1:{self.dicom_port}"

    def start(self) -> Orthanc:
        log = (self.workdir / "orthanc.log").open("ab")
        self.process = subprocess.Popen([ORTHANC, str(self.workdir / "orthanc.json")],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._ready, 60, 0.2)
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError("Orthanc exited:\n" + (self.workdir / "orthanc.log").read_text())
        try:
            self.get("/system")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                    timeout=10) as response:
            return json.loads(response.read())

    def instances(self) -> list[dict[str, Any]]:
        """Every stored instance's main tags."""
        return [self.get(f"/instances/{i}/simplified-tags") for i in self.get("/instances")]

    def by_modality(self, modality: str) -> list[dict[str, Any]]:
        return [tags for tags in self.instances() if tags.get("Modality") == modality]

    def file(self, instance_tags: dict[str, Any]) -> bytes:
        found = self.post("/tools/find", {"Level": "Instance", "Query": {
            "SOPInstanceUID": instance_tags["SOPInstanceUID"]}})
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/instances/{found[0]}/file",
                timeout=10) as response:
            return response.read()

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
