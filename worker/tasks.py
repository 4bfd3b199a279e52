"""Celery tasks. They take ids, never blobs, and are idempotent: a task delivered twice, or
for an instance another worker already finished, changes nothing."""

from __future__ import annotations

from functools import cache

from celery import shared_task
from sqlalchemy.exc import OperationalError

from service import processing
from service.runtime import Runtime, open_runtime
from service.settings import load_settings
from worker.app import PROCESS_INSTANCE_TASK


@cache
def _runtime() -> Runtime:
    """Opened lazily in each worker process, after the fork: no shared DB connections."""
    return open_runtime(load_settings())


@shared_task(
    name=PROCESS_INSTANCE_TASK,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=20,
)
def process_instance(instance_id: int) -> str:
    runtime = _runtime()
    return processing.process_instance(runtime.sessions, instance_id, runtime.assessor,
                                       runtime.output_policy()).value
