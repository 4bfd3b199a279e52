"""Service settings from `BONEAGE_*` environment variables and an optional TOML file.

The variable names are a contract with operators, deployment files and tests: renaming one
breaks a hospital's configuration silently, so they are spelled out here once. Environment
variables win over the file named by `BONEAGE_CONFIG_FILE`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dicom_io.nodes import Destination, check_ae_title
from service.gates import GateThresholds

__all__ = ["CallerRule", "Destination", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "BONEAGE_"
CONFIG_FILE_ENV = "BONEAGE_CONFIG_FILE"

SECRET_FIELDS = {"admin_token"}  # never echoed back in an error message or by `boneage config`


class SettingsError(ValueError):
    """A configuration value is wrong; the message names the variable and what it should be."""


@dataclass(frozen=True)
class CallerRule:
    """One entry of the allow-list: an AE title, optionally pinned to one peer address."""

    ae_title: str
    address: str | None = None

    def matches(self, ae_title: str, address: str) -> bool:
        if ae_title.strip() != self.ae_title:
            return False
        return self.address is None or _same_address(self.address, address)

    def __str__(self) -> str:
        return self.ae_title if self.address is None else f"{self.ae_title}@{self.address}"


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _split_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part).strip() for part in value if str(part).strip()]


def parse_caller(text: str) -> CallerRule:
    """Parse `AE` or `AE@ip`."""
    ae, _, address = text.strip().partition("@")
    if address:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{text!r}: {address!r} is not an IP address") from None
    return CallerRule(check_ae_title(ae), address or None)


class Settings(BaseSettings):
    """Everything an operator can set. Defaults run the whole service on one machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_default=True,
        env_nested_delimiter="__",
    )

    ae_title: str = Field("BONEAGE", description="Our AE title (called AE for C-STORE).")
    port: int = Field(11112, ge=1, le=65535, description="DICOM listening port.")
    bind: str = Field("0.0.0.0", description="Address the DICOM listener binds to.")
    var_dir: Path = Field(Path("var"), description="Spool, logs and the default SQLite DB.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the audit DB; unset: SQLite under the var dir."
    )
    broker_url: str | None = Field(
        None, description="Unset: embedded in-process worker; redis://...: Celery."
    )
    destinations: Annotated[list[Destination], NoDecode] = Field(
        default_factory=list, description="Comma list of AE@host:port that receive results."
    )
    allowed_callers: Annotated[list[CallerRule], NoDecode] = Field(
        default_factory=list,
        description="Comma list of AE or AE@ip; empty: only loopback peers are accepted.",
    )
    max_associations: int = Field(10, ge=1, le=1000, description="Concurrent associations.")
    max_associations_per_peer: int | None = Field(
        None, ge=1, le=1000,
        description="Connections one peer address may hold at once; unset: half the slots.",
    )
    artim_timeout_s: float = Field(
        5.0, gt=0, le=120,
        description="A connection that has not finished negotiating in this time is dropped.",
    )
    min_free_disk_mb: int = Field(
        500, ge=0, description="Refuse C-STORE (0xA700) when the spool has less free space."
    )
    model_dir: Path | None = Field(None, description="Model weights directory.")
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="Where the networks run: auto (CUDA when present), cpu or cuda[:N].",
    )
    torch_threads: int | None = Field(
        None, ge=1, le=256,
        description="CPU threads each worker process's network uses; unset: `boneage worker` "
                    "gives each of its processes the cores it may use divided by "
                    "--concurrency. With several workers on one host, set cores / workers: "
                    "more threads than cores make them all wait (bench/scale.py).",
    )
    batch_size: int | None = Field(
        None, ge=1, le=64,
        description="Waiting instances a Celery worker takes into one forward pass; unset: "
                    "8 when its network runs on CUDA, 1 on the CPU.",
    )
    embedded_workers: int = Field(
        2, ge=0, le=64,
        description="Threads of the embedded runner; 0 receives and spools only (processing held).",
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    lease_s: float = Field(
        30.0, ge=3, le=3600,
        description="A worker's claim on an instance lasts this long unless its heartbeat "
                    "renews it (every third of it); then the instance is queued again.",
    )
    max_claims: int = Field(
        3, ge=1, le=100,
        description="Workers lost on one instance before it is marked FAILED (WORKER_LOST).",
    )
    reconcile_every_s: float = Field(
        5.0, gt=0, le=300, description="How often serve looks for expired leases and lost "
                                       "hand-offs.",
    )
    requeue_queued_after_s: float = Field(
        30.0, gt=0, description="Retry a hand-off that failed (RECEIVED) after this long, and "
                                "send a QUEUED instance's task again when the broker's queue "
                                "is empty (the message was lost).",
    )
    delivery_retry_initial_s: float = Field(
        5.0, gt=0, description="First retry delay of a failed delivery (doubles each time)."
    )
    delivery_retry_max_s: float = Field(600.0, gt=0, description="Longest retry delay.")
    delivery_give_up_hours: float = Field(
        24.0, gt=0, description="Dead-letter a delivery still failing after this long."
    )
    delivery_poll_s: float = Field(1.0, gt=0, description="How often due deliveries are sent.")
    delivery_tls: bool = Field(False, description="Send results over TLS.")
    delivery_tls_ca_file: Path | None = Field(None, description="CA bundle for outbound TLS.")
    delivery_tls_cert_file: Path | None = Field(None, description="Client certificate (TLS).")
    delivery_tls_key_file: Path | None = Field(None, description="Client key (TLS).")
    report_rejections: bool = Field(
        True, description="Send a short SR saying why an image was rejected."
    )
    api_port: int = Field(8080, ge=1, le=65535, description="Admin HTTP API port (boneage api).")
    api_bind: str | None = Field(
        None, description="Address the API binds to; unset: 0.0.0.0 with a token, else "
                          "127.0.0.1. Without BONEAGE_ADMIN_TOKEN only loopback is allowed.",
    )
    scp_host: str | None = Field(
        None, description="Where `boneage api` finds the DICOM listener for /readyz; unset: "
                          "this host (the listener's bind address, or loopback for 0.0.0.0).",
    )
    admin_token: str | None = Field(
        None, min_length=16, description="Bearer token the admin API requires (16+ characters).",
    )
    tls_port: int | None = Field(
        None, ge=1, le=65535, description="A second DICOM listener that speaks only DICOM TLS.",
    )
    tls_cert_file: Path | None = Field(None, description="Server certificate (PEM) for TLS.")
    tls_key_file: Path | None = Field(None, description="Server private key (PEM) for TLS.")
    tls_ca_file: Path | None = Field(
        None, description="With it, TLS clients must present a certificate signed by this CA.",
    )
    gates: GateThresholds = Field(
        default_factory=GateThresholds,
        description="Quality-gate limits: BONEAGE_GATES__<NAME> or a [gates] table.",
    )

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return check_ae_title(value)

    @field_validator("bind", "api_bind")
    @classmethod
    def _bind(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        return None if value in (None, "") else value

    @model_validator(mode="after")
    def _api_and_tls(self) -> Settings:
        if self.admin_token is None and self.api_bind is not None and \
                not ipaddress.ip_address(self.api_bind).is_loopback:
            raise ValueError("BONEAGE_API_BIND: without BONEAGE_ADMIN_TOKEN the admin API "
                             "binds only to a loopback address")
        if self.tls_port is not None:
            if self.tls_cert_file is None or self.tls_key_file is None:
                raise ValueError("BONEAGE_TLS_PORT: BONEAGE_TLS_CERT_FILE and BONEAGE_TLS_KEY_FILE "
                                 "are needed for the TLS listener")
            if self.tls_port == self.port:
                raise ValueError("BONEAGE_TLS_PORT: must differ from BONEAGE_PORT")
        return self

    @field_validator("destinations", mode="before")
    @classmethod
    def _destinations(cls, value: Any) -> list[Destination]:
        if value and isinstance(value, list) and isinstance(value[0], Destination):
            return value
        return [Destination.parse(part) for part in _split_list(value)]

    @field_validator("allowed_callers", mode="before")
    @classmethod
    def _callers(cls, value: Any) -> list[CallerRule]:
        if value and isinstance(value, list) and isinstance(value[0], CallerRule):
            return value
        return [parse_caller(part) for part in _split_list(value)]

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "amqp://", "memory://")):
            raise ValueError(f"{value!r} is not a broker URL (redis://host:port/db)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if "://" not in value:
            raise ValueError(f"{value!r} is not a database URL (sqlite:///path, postgresql://...)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"{value!r} is not one of DEBUG, INFO, WARNING, ERROR")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    # Derived locations: one place decides the layout of the var dir.
    @property
    def uses_default_database(self) -> bool:
        """The embedded SQLite default migrates itself; any configured DB is the admin's."""
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'audit.sqlite3').resolve()}"

    @property
    def per_peer_limit(self) -> int:
        """One misbehaving host may not take every slot from the PACS."""
        if self.max_associations_per_peer is not None:
            return min(self.max_associations_per_peer, self.max_associations)
        return max(1, self.max_associations // 2)

    @property
    def effective_api_bind(self) -> str:
        if self.api_bind is not None:
            return self.api_bind
        return "0.0.0.0" if self.admin_token else "127.0.0.1"

    @property
    def effective_scp_host(self) -> str:
        """The API may run in another container than `serve` (docker/compose.yaml)."""
        if self.scp_host:
            return self.scp_host
        return "127.0.0.1" if self.bind in {"0.0.0.0", "::"} else self.bind

    def effective_batch_size(self, on_cuda: bool) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 8 if on_cuda else 1

    @property
    def spool_dir(self) -> Path:
        return self.var_dir / "spool"

    @property
    def outbox_dir(self) -> Path:
        return self.spool_dir / "outbox"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "logs"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning pydantic's report into one line per bad variable."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_FILE_ENV}: no such file {config_file!r}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # a rule across fields names its variables itself
                lines.append(message)
                continue
            field = str(error["loc"][0])
            given = error.get("input")
            secret = field in SECRET_FIELDS
            shown = f" (got {given!r})" if isinstance(given, str | int) and not secret else ""
            lines.append(f"{ENV_PREFIX}{field.upper()}: {message}{shown}")
        raise SettingsError("; ".join(lines)) from None
