"""`boneage`'s entry point: the service's commands plus the two that run processes, `serve`
(receiver, embedded worker or Celery dispatcher, deliverer) and `worker` (a Celery worker).

This is the one module that composes `service` and `worker`; `service` knows nothing of it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import Annotated

import typer

from service.cli import app
from service.cli_common import console, err, runtime_or_exit, settings_or_exit
from service.handoff import Dispatcher
from service.leases import Claimant
from service.logs import setup_logging
from service.runtime import Runtime
from worker.status_view import render_status

log = logging.getLogger(__name__)


def _preload(runtime: Runtime, claimant: Claimant) -> None:
    """Load the networks before the first image arrives, say what they are, and start the
    heartbeat that keeps the embedded runner's leases."""
    try:
        model = runtime.assessor().model
    except Exception:
        log.exception("the model could not be loaded; instances will be marked FAILED")
        claimant.start(None)
        return
    claimant.start(model.version)
    log.info("model %s %s loaded (weights %s)", model.name, model.version,
             model.weights_sha256[:12])
    if model.warning:
        log.warning("%s", model.warning)


@app.command()
def serve() -> None:
    """Receive radiographs over DICOM and process them (embedded worker unless a broker is set)."""
    settings = settings_or_exit()
    setup_logging(settings.log_level, settings.log_dir)
    runtime = runtime_or_exit(settings)

    from service.outbox import Deliverer
    from service.processing import process_instance
    from service.server import Service

    deliverer = Deliverer(runtime.sessions, runtime.delivery_policy())
    outputs = runtime.output_policy(deliverer.wake)
    runner = claimant = None
    if settings.broker_url:
        from worker.app import CeleryDispatcher, create_app

        dispatcher: Dispatcher = CeleryDispatcher(create_app(settings.broker_url))
    else:
        from service.leases import Claimant
        from worker.embedded import EmbeddedRunner

        claimant = Claimant(runtime.sessions, "embedded", lease_s=settings.lease_s)
        held_by = claimant
        runner = EmbeddedRunner(
            lambda instance_id: process_instance(runtime.sessions, instance_id,
                                                 runtime.assessor, held_by, outputs),
            settings.embedded_workers,
        )
        dispatcher = runner

    service = Service(runtime, dispatcher, embedded=runner is not None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if runner is not None and claimant is not None:
        runner.start()
        threading.Thread(target=_preload, args=(runtime, claimant), name="preload",
                         daemon=True).start()
    deliverer.start()
    try:
        service.start()
    except OSError as exc:
        err.print(f"[bold red]cannot listen on {settings.bind}:{settings.port}:[/] {exc}")
        raise typer.Exit(1) from None
    stop.wait()
    # An on-call engineer reading the log should see a clean stop, not a silent end.
    log.info("stopping: no new associations; finishing the instances in hand")
    service.stop()
    if runner is not None and claimant is not None:
        runner.stop()
        claimant.stop()
    deliverer.stop()
    log.info("stopped")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run a Celery worker for the `inference` queue (needs BONEAGE_BROKER_URL)."""
    settings = settings_or_exit()
    if not settings.broker_url:
        err.print("[bold red]BONEAGE_BROKER_URL is not set:[/] `boneage serve` runs the "
                  "embedded worker by itself; a Celery worker needs a broker.")
        raise typer.Exit(2)
    setup_logging(settings.log_level, settings.log_dir)
    runtime_or_exit(settings).engine.dispose()  # fail fast on a schema behind head
    if settings.torch_threads is None:  # the pool's children read it from the environment
        cores = len(os.sched_getaffinity(0))
        os.environ["BONEAGE_TORCH_THREADS"] = str(max(1, cores // max(1, concurrency)))
    from worker.app import INFERENCE_QUEUE, create_app

    create_app(settings.broker_url).worker_main([
        "worker", "--loglevel", settings.log_level, "--concurrency", str(concurrency),
        "-Q", INFERENCE_QUEUE, "--without-gossip", "--without-mingle",
    ])


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Is work flowing? Queue depth, live workers and their leases, the oldest unfinished
    instance, deliveries failing or dead-lettered."""
    settings = settings_or_exit()
    runtime = runtime_or_exit(settings)
    from service.status_report import status_report

    waiting = _queue_waiting(settings.broker_url)()
    with runtime.sessions() as session:
        report = status_report(session, queue="celery (redis)" if settings.broker_url
                               else "embedded (in boneage serve)", queue_waiting=waiting,
                               lease_s=settings.lease_s)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    render_status(report)


@app.command()
def api() -> None:
    """Serve the admin HTTP API and dashboard on BONEAGE_API_PORT (token: BONEAGE_ADMIN_TOKEN;
    without one, loopback only)."""
    settings = settings_or_exit()
    setup_logging(settings.log_level, settings.log_dir)
    runtime = runtime_or_exit(settings)
    import uvicorn

    from models.shipped import DEFAULT_MODEL_DIR
    from service.api.app import ApiContext, create_app

    waiting = _queue_waiting(settings.broker_url)
    app_ = create_app(ApiContext(runtime, waiting, settings.model_dir or DEFAULT_MODEL_DIR))
    bind = settings.effective_api_bind
    log.info("admin API on http://%s:%d (%s)", bind, settings.api_port,
             "token required" if settings.admin_token else "no token: loopback only")
    # No access log: a query string may hold a patient id; service.api.access records
    # every request, without it, in the audit DB.
    uvicorn.run(app_, host=bind, port=settings.api_port, access_log=False, log_config=None)


def _queue_waiting(broker_url: str | None):  # type: ignore[no-untyped-def]
    if not broker_url:
        return lambda: None
    from worker.app import CeleryDispatcher, create_app

    return CeleryDispatcher(create_app(broker_url)).waiting


def main() -> None:
    app()
