"""Opening what every process of the service needs: settings, the audit DB, the spool.

The networks (service.pipeline, and with it torch, monai and timm: seconds to import) are
imported only when a process asks for its assessor, so the audit commands, `boneage api` and
the receiver start without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dicom_io.tls import client_context
from service.audit.session import ensure_schema, make_engine, make_session_factory
from service.outbox import DeliveryPolicy
from service.processing import OutputPolicy
from service.settings import Settings
from service.spool import Spool

if TYPE_CHECKING:
    from service.pipeline import Assessor


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    spool: Spool

    def output_policy(self, wake: Callable[[], None] | None = None) -> OutputPolicy:
        settings = self.settings
        return OutputPolicy(settings.outbox_dir, tuple(settings.destinations),
                            settings.report_rejections, wake or (lambda: None))

    def delivery_policy(self) -> DeliveryPolicy:
        return delivery_policy(self.settings)

    def assessor(self) -> Assessor:
        """The pipeline's networks, loaded on first use in this process (after any fork)."""
        from service.pipeline import shared_assessor

        return shared_assessor(self.settings.model_dir, self.settings.gates,
                               self.settings.device)


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The deliverer's part of the settings, with the outbound TLS context opened once."""
    tls = client_context(settings.delivery_tls_ca_file, settings.delivery_tls_cert_file,
                      settings.delivery_tls_key_file) if settings.delivery_tls else None
    return DeliveryPolicy(
        calling_ae=settings.ae_title, retry_initial_s=settings.delivery_retry_initial_s,
        retry_max_s=settings.delivery_retry_max_s,
        give_up_hours=settings.delivery_give_up_hours, poll_s=settings.delivery_poll_s, tls=tls)


def open_runtime(settings: Settings) -> Runtime:
    """Connect and check the schema; raises SchemaOutOfDate when an admin must migrate."""
    engine = make_engine(settings.effective_database_url)
    ensure_schema(engine, auto_upgrade=settings.uses_default_database)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        spool=Spool(settings.spool_dir).ensure(),
    )
