"""Settings: the BONEAGE_* contract, and clear start-up errors that name the variable."""

from __future__ import annotations

import subprocess

import pytest

from service.settings import CallerRule, Destination, SettingsError, load_settings
from tests.peers import boneage_command


def test_defaults_run_everything_on_one_machine(monkeypatch):
    for name in ("BONEAGE_DATABASE_URL", "BONEAGE_BROKER_URL", "BONEAGE_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.ae_title, settings.port, settings.bind) == ("BONEAGE", 11112, "0.0.0.0")
    assert settings.broker_url is None and settings.uses_default_database
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("var/audit.sqlite3")
    assert settings.allowed_callers == [] and settings.destinations == []
    assert settings.device == "auto"  # the GPU when this process can see one


def test_lists_are_parsed_from_the_environment(monkeypatch):
    monkeypatch.setenv("BONEAGE_DESTINATIONS", "ORTHANC@127.0.0.1:4242, PACS2@pacs.local:104")
    monkeypatch.setenv("BONEAGE_ALLOWED_CALLERS", "ORTHANC@127.0.0.1,MODALITY1")
    settings = load_settings()
    assert settings.destinations == [
        Destination("ORTHANC", "127.0.0.1", 4242), Destination("PACS2", "pacs.local", 104)
    ]
    assert settings.allowed_callers == [CallerRule("ORTHANC", "127.0.0.1"), CallerRule("MODALITY1")]
    assert settings.allowed_callers[0].matches("ORTHANC", "127.0.0.1")
    assert not settings.allowed_callers[0].matches("ORTHANC", "127.0.0.2")
    assert settings.allowed_callers[1].matches("MODALITY1", "10.1.2.3")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("BONEAGE_PORT", "70000", "BONEAGE_PORT"),
        ("BONEAGE_PORT", "eleven", "BONEAGE_PORT"),
        ("BONEAGE_AE_TITLE", "A_TITLE_FAR_TOO_LONG", "BONEAGE_AE_TITLE"),
        ("BONEAGE_BIND", "everywhere", "BONEAGE_BIND"),
        ("BONEAGE_DESTINATIONS", "ORTHANC@localhost", "BONEAGE_DESTINATIONS"),
        ("BONEAGE_ALLOWED_CALLERS", "PACS@not-an-ip", "BONEAGE_ALLOWED_CALLERS"),
        ("BONEAGE_BROKER_URL", "localhost:6379", "BONEAGE_BROKER_URL"),
        ("BONEAGE_MIN_FREE_DISK_MB", "-5", "BONEAGE_MIN_FREE_DISK_MB"),
        ("BONEAGE_MAX_ASSOCIATIONS", "0", "BONEAGE_MAX_ASSOCIATIONS"),
        ("BONEAGE_DEVICE", "gpu", "BONEAGE_DEVICE"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)


def test_toml_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    config = tmp_path / "boneage.toml"
    config.write_text('ae_title = "FROMFILE"\nport = 4006\nmin_free_disk_mb = 10\n')
    monkeypatch.setenv("BONEAGE_CONFIG_FILE", str(config))
    monkeypatch.setenv("BONEAGE_PORT", "4007")
    settings = load_settings()
    assert (settings.ae_title, settings.port, settings.min_free_disk_mb) == ("FROMFILE", 4007, 10)


def test_serve_refuses_to_start_with_one_clear_line(tmp_path):
    result = subprocess.run(
        boneage_command("serve"), capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "BONEAGE_VAR_DIR": str(tmp_path), "BONEAGE_PORT": "99999"},
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "BONEAGE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_destination_prints_as_it_parses():
    """The audit rows store a destination as its string and the deliverer parses it back."""
    for text in ("ORTHANC@127.0.0.1:4242", "PACS2@pacs.local:104", "V6@[::1]:11112"):
        node = Destination.parse(text)
        assert str(node) == text and Destination.parse(str(node)) == node
    assert Destination.parse("V6@[::1]:11112").host == "::1"
    for bad in ("ORTHANC@host", "TOO-LONG-AE-TITLE-X@h:1", "A@h:70000"):
        with pytest.raises(ValueError):
            Destination.parse(bad)
