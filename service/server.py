"""One `boneage serve` process: recover what a crash left, then listen.

Start-up order is part of the durability story: half-received files are dropped (their
senders never got a success), spooled files without an audit row are adopted, unfinished
instances are queued again, and only then does the listener accept new work.
"""

from __future__ import annotations

import logging
import ssl
import threading
from datetime import timedelta

from dicom_io.scp import StorageServer
from dicom_io.tls import server_context
from service.handoff import Dispatcher, resume_unfinished, ring_again, sweep_stuck
from service.leases import reclaim_expired
from service.receiver import Receiver, adopt_orphans
from service.runtime import Runtime

log = logging.getLogger(__name__)


class Service:
    """`embedded`: this process is the only worker, so at start-up every PROCESSING row is
    stale; with Celery workers only expired leases are taken back."""

    def __init__(self, runtime: Runtime, dispatcher: Dispatcher, *, embedded: bool) -> None:
        self._runtime = runtime
        self._dispatcher = dispatcher
        self._submit = dispatcher.submit
        self._embedded = embedded
        self._listener: StorageServer | None = None
        self._tls_listener: StorageServer | None = None
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("service not started")
        return self._listener.port

    def recover(self) -> None:
        runtime = self._runtime
        dropped = runtime.spool.clear_partial()
        if dropped:
            log.warning("dropped %d half-received file(s); their senders were not acked", dropped)
        adopt_orphans(runtime.sessions, runtime.spool)
        resume_unfinished(runtime.sessions, self._submit, include_processing=self._embedded)
        self.reconcile()

    def start(self) -> Service:
        runtime, settings = self._runtime, self._runtime.settings
        self.recover()
        receiver = Receiver(
            runtime.sessions,
            runtime.spool,
            allowed_callers=settings.allowed_callers,
            min_free_disk_mb=settings.min_free_disk_mb,
            submit=self._submit,
        )
        self._listener = self._listen(receiver, settings.port, None)
        if settings.tls_port is not None:  # the same receiver: one allow-list for both
            self._tls_listener = self._listen(receiver, settings.tls_port, server_context(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file))
            log.info("listening for DICOM TLS on %s:%d (%s)", settings.bind,
                     self._tls_listener.port, "client certificates required"
                     if settings.tls_ca_file else "no client certificate asked")
        self._sweeper = threading.Thread(target=self._sweep_loop, name="sweeper", daemon=True)
        self._sweeper.start()
        log.info(
            "listening as %s on %s:%d (audit DB %s)",
            settings.ae_title, settings.bind, self.port, runtime.engine.url.get_backend_name(),
        )
        return self

    def _listen(self, receiver: Receiver, port: int,
                tls: ssl.SSLContext | None) -> StorageServer:
        settings = self._runtime.settings
        return StorageServer(
            receiver,
            ae_title=settings.ae_title,
            bind=settings.bind,
            port=port,
            max_associations=settings.max_associations,
            receive_dir=self._runtime.spool.partial,
            per_peer_limit=settings.per_peer_limit,
            artim_timeout_s=settings.artim_timeout_s,
            ssl_context=tls,
        ).start()

    def stop(self) -> None:
        self._stopping.set()
        for listener in (self._listener, self._tls_listener):
            if listener is not None:
                listener.stop()
        self._listener = self._tls_listener = None

    def reconcile(self) -> None:
        """The audit DB is the truth and the queue only a doorbell: take back expired leases
        (dead workers), retry failed hand-offs, and ring again for messages the broker lost."""
        settings, sessions = self._runtime.settings, self._runtime.sessions
        after = timedelta(seconds=settings.requeue_queued_after_s)
        reclaim_expired(sessions, self._submit, max_claims=settings.max_claims)
        sweep_stuck(sessions, self._submit, older_than=after)
        ring_again(sessions, self._submit, older_than=after,
                   waiting_in_queue=self._dispatcher.waiting())

    def _sweep_loop(self) -> None:
        every = self._runtime.settings.reconcile_every_s
        while not self._stopping.wait(every):
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed; will retry")
