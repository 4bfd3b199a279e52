"""`boneage`'s entry point: the service's commands plus the two that run processes, `serve`
(receiver, embedded worker or Celery dispatcher, deliverer) and `worker` (a Celery worker).

This is the one module that composes `service` and `worker`; `service` knows nothing of it.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from typing import Annotated

import typer

from service.cli import app
from service.cli_common import err, runtime_or_exit, settings_or_exit
from service.logs import setup_logging
from service.runtime import Runtime

log = logging.getLogger(__name__)


def _preload(runtime: Runtime) -> None:
    """Load the networks before the first image arrives, and say what they are."""
    try:
        model = runtime.assessor().model
    except Exception:
        log.exception("the model could not be loaded; instances will be marked FAILED")
        return
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
    runner = None
    if settings.broker_url:
        from worker.app import CeleryDispatcher, create_app

        submit = CeleryDispatcher(create_app(settings.broker_url)).submit
        stale = timedelta(hours=1)  # other workers may be busy with PROCESSING ones
    else:
        from worker.embedded import EmbeddedRunner

        runner = EmbeddedRunner(
            lambda instance_id: process_instance(runtime.sessions, instance_id,
                                                 runtime.assessor, outputs),
            settings.embedded_workers,
        )
        submit = runner.submit
        stale = timedelta(0)  # nobody else can be processing: all PROCESSING rows are stale

    service = Service(runtime, submit, stale_processing_after=stale)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if runner is not None:
        runner.start()
        threading.Thread(target=_preload, args=(runtime,), name="preload", daemon=True).start()
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
    if runner is not None:
        runner.stop()
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
    from worker.app import INFERENCE_QUEUE, create_app

    create_app(settings.broker_url).worker_main([
        "worker", "--loglevel", settings.log_level, "--concurrency", str(concurrency),
        "-Q", INFERENCE_QUEUE, "--without-gossip", "--without-mingle",
    ])


def main() -> None:
    app()
