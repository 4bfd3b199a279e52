"""The embedded runner: worker threads inside `boneage serve`, so one command is the system.

It carries instance ids only; whatever it loses in a crash is found again by the start-up
resume, because the audit DB, not this queue, is the record of what is unfinished.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_STOP = -1


class EmbeddedRunner:
    def __init__(self, process: Callable[[int], object], threads: int) -> None:
        self._process = process
        self._threads = threads
        self._queue: queue.Queue[int] = queue.Queue()
        self._workers: list[threading.Thread] = []

    def submit(self, instance_id: int) -> None:
        self._queue.put(instance_id)

    def waiting(self) -> int:
        return self._queue.qsize()

    def start(self) -> EmbeddedRunner:
        for index in range(self._threads):
            thread = threading.Thread(target=self._loop, name=f"runner-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        if self._threads == 0:
            log.warning("embedded runner has 0 threads: instances are received and held")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the instance in hand; queued ones are resumed at the next start."""
        for _ in self._workers:
            self._queue.put(_STOP)
        for thread in self._workers:
            thread.join(timeout)
        self._workers.clear()

    def _loop(self) -> None:
        while True:
            instance_id = self._queue.get()
            if instance_id == _STOP:
                return
            try:
                self._process(instance_id)
            except Exception:
                log.exception("processing instance %d failed", instance_id)
