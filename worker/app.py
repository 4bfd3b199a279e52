"""The Celery application: Redis broker, one `inference` queue.

`boneage worker` runs it; `boneage serve` only sends task messages carrying instance ids.
Tasks are acknowledged late, so a worker killed mid-task leaves its message to another.
Delivery is not a Celery task: `boneage serve`'s deliverer sends what the audit DB lists as
due (service.outbox), so there is no delivery queue.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

INFERENCE_QUEUE = "inference"
PROCESS_INSTANCE_TASK = "boneage.process_instance"

# Sending must not hang a C-STORE response: a few quick tries, then the sweep takes over.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def create_app(broker_url: str) -> Celery:
    app = Celery("boneage", broker=broker_url, include=["worker.tasks"])
    app.conf.update(
        task_queues=[Queue(INFERENCE_QUEUE)],
        task_default_queue=INFERENCE_QUEUE,
        task_routes={PROCESS_INSTANCE_TASK: {"queue": INFERENCE_QUEUE}},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        # kombu's Redis transport waits up to brpop_timeout (1 s) before it polls again once
        # a late-acked task frees the slot. bench/scale.py, one worker, 20 images of 2304 px:
        # 20 s of the 57 s burst were idle between tasks; with 0.1 s, 10 s of 56.
        broker_transport_options={"polling_interval": 0.1},
        # Each process loads the networks after the fork, in worker_process_init (tasks.py);
        # on 2 busy cores that can take longer than billiard's default 4 s.
        worker_proc_alive_timeout=120,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_hijack_root_logger=False,
    )
    return app


class CeleryDispatcher:
    """`submit(instance_id)` for the service, backed by a Celery broker."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def waiting(self) -> int | None:
        """Ready messages in the inference queue (kombu sums Redis's priority lists)."""
        try:
            with self._app.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1)
                # Not passive: after a Redis restart the queue is unknown until someone
                # declares it again, and declaring our own queue is harmless.
                declared = connection.default_channel.queue_declare(queue=INFERENCE_QUEUE)
                return int(declared.message_count)
        except Exception:
            return None

    def submit(self, instance_id: int) -> None:
        self._app.send_task(
            PROCESS_INSTANCE_TASK,
            args=[instance_id],
            queue=INFERENCE_QUEUE,
            retry=True,
            retry_policy=_PUBLISH_RETRY,
        )
