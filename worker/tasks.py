"""Celery tasks. They take ids, never blobs, and are idempotent: a task delivered twice, or
for an instance another worker already finished, changes nothing."""

from __future__ import annotations

import logging
from functools import cache

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy.exc import OperationalError

# The networks' code (torch, monai, timm) is imported here, in the prefork parent, so that its
# pages are shared by every pool process; the weights load in each process after the fork.
import service.pipeline  # noqa: F401
from service import processing
from service.leases import Claimant
from service.runtime import Runtime, open_runtime
from service.settings import load_settings
from worker.app import PROCESS_INSTANCE_TASK

log = logging.getLogger(__name__)


@cache
def _runtime() -> Runtime:
    """Opened in each worker process, after the fork: no shared DB connections."""
    return open_runtime(load_settings())


@cache
def _claimant() -> Claimant:
    runtime = _runtime()
    return Claimant(runtime.sessions, "celery", lease_s=runtime.settings.lease_s)


@worker_process_init.connect
def _load_after_fork(**_: object) -> None:
    """Load the networks once per worker process, before its first task, and start the
    heartbeat that keeps its leases."""
    runtime = _runtime()
    if runtime.settings.torch_threads:
        import torch

        torch.set_num_threads(runtime.settings.torch_threads)
    try:
        model = runtime.assessor().model
        version: str | None = model.version
        log.info("model %s %s loaded in worker process (%s torch threads)", model.name,
                 model.version, runtime.settings.torch_threads or "default")
    except Exception:
        log.exception("the model could not be loaded; instances will be marked FAILED")
        version = None
    _claimant().start(version)


@worker_process_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    _claimant().stop()


@shared_task(
    name=PROCESS_INSTANCE_TASK,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=20,
)
def process_instance(instance_id: int) -> str:
    """The instance the message names, plus (batch size > 1, as on CUDA by default) the
    others waiting in the audit DB, in one forward pass."""
    runtime = _runtime()
    size = runtime.settings.effective_batch_size(_on_cuda(runtime))
    batch = [instance_id, *processing.waiting_companions(runtime.sessions, instance_id,
                                                         size - 1)]
    statuses = processing.process_batch(runtime.sessions, batch, runtime.assessor,
                                        _claimant(), runtime.output_policy())
    return statuses[0].value


def _on_cuda(runtime: Runtime) -> bool:
    try:
        return runtime.assessor().predictor.device.type == "cuda"
    except Exception:
        return False  # the model could not load: process_batch records why
