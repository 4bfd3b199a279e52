"""One `boneage serve` process: recover what a crash left, then listen.

Start-up order is part of the durability story: half-received files are dropped (their
senders never got a success), spooled files without an audit row are adopted, unfinished
instances are queued again, and only then does the listener accept new work.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from dicom_io.scp import StorageServer
from service.handoff import Submit, resume_unfinished, sweep_stuck
from service.receiver import Receiver, adopt_orphans
from service.runtime import Runtime

log = logging.getLogger(__name__)

SWEEP_EVERY = timedelta(seconds=30)


class Service:
    def __init__(
        self, runtime: Runtime, submit: Submit, *, stale_processing_after: timedelta
    ) -> None:
        self._runtime = runtime
        self._submit = submit
        self._stale_processing_after = stale_processing_after
        self._listener: StorageServer | None = None
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
        resume_unfinished(
            runtime.sessions, self._submit,
            include_processing_older_than=self._stale_processing_after,
        )

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
        self._listener = StorageServer(
            receiver,
            ae_title=settings.ae_title,
            bind=settings.bind,
            port=settings.port,
            max_associations=settings.max_associations,
            receive_dir=runtime.spool.partial,
        ).start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="sweeper", daemon=True)
        self._sweeper.start()
        log.info(
            "listening as %s on %s:%d (audit DB %s)",
            settings.ae_title, settings.bind, self.port, runtime.engine.url.get_backend_name(),
        )
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def _sweep_loop(self) -> None:
        while not self._stopping.wait(SWEEP_EVERY.total_seconds()):
            try:
                sweep_stuck(self._runtime.sessions, self._submit, older_than=SWEEP_EVERY)
            except Exception:
                log.exception("sweep failed")
