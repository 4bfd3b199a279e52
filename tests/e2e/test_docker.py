"""docker/ cannot be built here (no Docker engine), so what can rot without one is checked:
the compose environment is valid configuration, the healthcheck speaks DICOM to a real
`boneage serve`, and every path the Dockerfiles copy exists. (The demo PACS's Orthanc
configuration and routing rule are exercised by the Orthanc tests, which load them.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from service.settings import CallerRule, Destination, load_settings
from tests.databases import only_backend
from tests.peers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
HEALTHCHECK = DOCKER / "healthcheck.py"


def _compose_environment(service: str = "scp", **given: str) -> dict[str, str]:
    """Compose's interpolation: ${VAR:-default} takes the default, ${VAR:?error} what is
    `given` (compose refuses to start without it)."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    env = {}
    for key, value in compose["services"][service]["environment"].items():
        value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
        env[key] = re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", lambda m: given[m.group(1)], value)
    return env


def test_compose_environment_is_valid_configuration(monkeypatch):
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    for name in ("scp", "worker", "migrate"):
        assert compose["services"][name]["environment"] == compose["services"]["scp"][
            "environment"], f"{name} must share the scp's settings"
    for key, value in _compose_environment().items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.destinations == [Destination("ORTHANC", "orthanc", 4242)]
    assert CallerRule("HEALTHCHECK", "127.0.0.1") in settings.allowed_callers
    assert settings.broker_url == "redis://redis:6379/0"
    assert not settings.uses_default_database


def test_compose_api_reaches_the_scp_and_needs_a_token(monkeypatch):
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    api = compose["services"]["api"]
    assert "${BONEAGE_ADMIN_TOKEN:?" in api["environment"]["BONEAGE_ADMIN_TOKEN"]
    assert api["ports"] == ["127.0.0.1:8080:8080"]
    token = "a-demo-token-0123456789"
    env = _compose_environment("api", BONEAGE_ADMIN_TOKEN=token)
    shared = _compose_environment()
    assert {k: v for k, v in env.items() if k in shared} == shared
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.admin_token == token and settings.effective_api_bind == "0.0.0.0"
    assert settings.api_port == 8080 and settings.effective_scp_host == "scp"
    monkeypatch.delenv("BONEAGE_SCP_HOST")
    assert load_settings().effective_scp_host == "127.0.0.1"  # serve's own host by default


def test_dockerfiles_copy_only_what_exists():
    for dockerfile in (DOCKER / "Dockerfile", DOCKER / "orthanc" / "Dockerfile"):
        context = ROOT if dockerfile.parent == DOCKER else dockerfile.parent
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (context / source).exists(), f"{dockerfile.name}: {source}"


@only_backend("sqlite")
def test_healthcheck_echoes_a_running_service(start_service):
    service = start_service(BONEAGE_ALLOWED_CALLERS="ORTHANC,HEALTHCHECK@127.0.0.1")
    env = {**os.environ, "BONEAGE_PORT": str(service.port)}
    result = subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, timeout=60,
                            capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    env["BONEAGE_PORT"] = str(free_port())  # nothing listens there
    result = subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, timeout=60,
                            capture_output=True)
    assert result.returncode == 1
