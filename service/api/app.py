"""The admin API's routes. Reads mirror `boneage audit` (the same queries, the same JSON and
CSV); writes are the admin actions of service.admin_actions and service.reviews, each
recorded with who asked. FastAPI publishes the OpenAPI spec at `/openapi.json` (`/docs`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from dicom_io.nodes import Destination
from dicom_io.scu import listening
from dicom_io.thumbnail import NotRenderable, png_thumbnail
from service import admin_actions
from service.api.access import TOKEN_COOKIE, AccessGuard, who
from service.api.dashboard import login_page, render_dashboard
from service.api.metrics import AuditCollector, metrics_text, model_card
from service.audit import queries
from service.audit.export import (
    HISTORY_COLUMNS,
    LIST_COLUMNS,
    STATS_COLUMNS,
    history_rows,
    stats_rows,
    to_csv,
)
from service.audit.session import transaction
from service.audit.tables import Delivery, InstanceStatus
from service.reviews import ReviewError, ReviewRequest, record_review
from service.runtime import Runtime
from service.status_report import status_report

CSV = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class ApiContext:
    """What the routes need besides the request: the audit DB, the settings, and the broker's
    queue depth (measured by the caller that knows the broker; None when there is none)."""

    runtime: Runtime
    queue_waiting: Callable[[], int | None]
    model_dir: Path

    def session(self) -> Session:
        return self.runtime.sessions()


def _context(request: Request) -> ApiContext:
    return request.app.state.context  # type: ignore[no-any-return]


Ctx = Annotated[ApiContext, Depends(_context)]
Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]


class ReviewBody(BaseModel):
    reader: str = Field(min_length=1, max_length=64, description="Who read the study.")
    accept: bool = Field(False, description="The reader accepts the AI's bone age.")
    bone_age_months: float | None = Field(None, ge=0, le=240,
                                          description="The reader's own bone age.")
    comment: str | None = Field(None, max_length=2000)


def create_app(context: ApiContext) -> FastAPI:
    settings = context.runtime.settings
    guard = AccessGuard(settings.admin_token, context.runtime.sessions)
    app = FastAPI(title="boneage-pacs admin API", version="1",
                  description="Audit queries, admin actions, health, metrics and the "
                              "dashboard of the bone-age service. Research model outputs: "
                              "not for diagnostic use.")
    app.middleware("http")(guard.middleware)
    collector = AuditCollector(context.runtime.sessions, model_card(context.model_dir),
                               settings.lease_s, context.queue_waiting)

    app.state.context = context
    _health_routes(app)
    _read_routes(app)
    _write_routes(app)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    def metrics() -> Response:
        return Response(metrics_text(collector),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse, tags=["dashboard"])
    def dashboard(c: Ctx) -> HTMLResponse:
        with c.session() as session:
            return HTMLResponse(render_dashboard(session, c.queue_waiting(),
                                                 model_card(c.model_dir)))

    @app.get("/login", response_class=HTMLResponse, tags=["dashboard"])
    def login_form() -> HTMLResponse:
        return HTMLResponse(login_page(guard.token_required))

    @app.post("/login", tags=["dashboard"])
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        if not guard.matches(token):
            return HTMLResponse(login_page(True, failed=True), status_code=401)
        response = Response(status_code=303, headers={"Location": "/"})
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    return app


def _health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The API process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz(c: Ctx) -> JSONResponse:
        """Ready when the audit DB answers, the DICOM listener answers an association request
        and a worker has been heard from within one lease period."""
        checks = readiness(c)
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def readiness(c: ApiContext) -> dict[str, dict[str, Any]]:
    settings = c.runtime.settings
    checks: dict[str, dict[str, Any]] = {}
    try:
        with c.session() as session:
            session.execute(text("SELECT 1"))
            alive = queries.live_workers(session, settings.lease_s)
        checks["database"] = {"ok": True}
        checks["workers"] = {"ok": alive > 0, "alive": alive}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
        checks["workers"] = {"ok": False, "error": "database unreachable"}
    scp = Destination(settings.ae_title, settings.effective_scp_host, settings.port)
    checks["dicom_listener"] = {"ok": listening(scp, calling_ae="BONEAGE-API", timeout=3),
                                "at": str(scp)}
    return checks


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return queries.parse_when(value)
    except ValueError:
        raise HTTPException(422, f"{name}: not an ISO 8601 date or time") from None


def _read_routes(app: FastAPI) -> None:
    @app.get("/instances", tags=["audit"])
    def list_instances(c: Ctx, status: InstanceStatus | None = None, since: str | None = None,
                       until: str | None = None, accession: str | None = None,
                       patient_id: str | None = None, study: str | None = None,
                       model_version: str | None = None, reason: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=10000)] = 50,
                       format: Format = "json") -> Any:
        """Received instances, newest first (`boneage audit list`)."""
        where = queries.InstanceFilter(
            status=status, since=_when(since, "since"), until=_when(until, "until"),
            accession_number=accession, patient_id=patient_id, study_instance_uid=study,
            model_version=model_version, reason=reason, limit=limit)
        with c.session() as session:
            rows = queries.list_instances(session, where)
        return Response(to_csv(rows, LIST_COLUMNS), media_type=CSV) if format == "csv" \
            else rows

    @app.get("/instances/{instance_id}", tags=["audit"])
    def show_instance(c: Ctx, instance_id: int, format: Format = "json") -> Any:
        """One instance's whole history (`boneage audit show`)."""
        with c.session() as session:
            detail = queries.instance_detail(session, instance_id)
        if detail is None:
            raise HTTPException(404, f"no instance {instance_id}")
        return Response(to_csv(history_rows(detail), HISTORY_COLUMNS), media_type=CSV) \
            if format == "csv" else detail

    @app.get("/instances/{instance_id}/report-image.png", tags=["audit"],
             response_class=Response)
    def report_image(c: Ctx, instance_id: int) -> Response:
        """The report image (secondary capture) as a PNG thumbnail."""
        with c.session() as session:
            path = session.scalar(select(Delivery.path).where(
                Delivery.instance_id == instance_id, Delivery.kind == "sc").limit(1))
        if path is None or not Path(path).is_file():
            raise HTTPException(404, f"instance {instance_id} has no report image")
        try:
            return Response(png_thumbnail(Path(path)), media_type="image/png",
                            headers={"Cache-Control": "private, max-age=3600"})
        except NotRenderable as exc:
            raise HTTPException(415, str(exc)) from None

    @app.get("/stats", tags=["audit"])
    def stats(c: Ctx, format: Format = "json") -> Any:
        """Counts, rejection reasons, latency percentiles, failing destinations, agreement
        with radiologists (`boneage audit stats`)."""
        with c.session() as session:
            figures = queries.audit_stats(session)
        return Response(to_csv(stats_rows(figures), STATS_COLUMNS), media_type=CSV) \
            if format == "csv" else figures

    @app.get("/status", tags=["operations"])
    def status(c: Ctx) -> dict[str, Any]:
        """Queue depth, live workers and their leases, the oldest unfinished instance,
        deliveries failing or dead-lettered (`boneage status`)."""
        settings = c.runtime.settings
        with c.session() as session:
            return status_report(session, queue="celery (redis)" if settings.broker_url
                                 else "embedded (in boneage serve)",
                                 queue_waiting=c.queue_waiting(),
                                 lease_s=settings.lease_s).as_dict()


def _write_routes(app: FastAPI) -> None:
    @app.post("/instances/{instance_id}/requeue", tags=["admin actions"])
    def requeue(c: Ctx, request: Request, instance_id: int) -> dict[str, Any]:
        """Put a FAILED instance back in line (`boneage requeue`)."""
        with transaction(c.runtime.sessions) as session:
            moved = admin_actions.requeue_failed(session, instance_id, who(request))
        if not moved:
            raise HTTPException(409, f"instance {instance_id} is not FAILED")
        request.state.action = f"requeue instance {instance_id}"
        return {"instance_id": instance_id, "requeued": True}

    @app.post("/deliveries/{delivery_id}/retry", tags=["admin actions"])
    def retry(c: Ctx, request: Request, delivery_id: int) -> dict[str, Any]:
        """Give a dead-lettered delivery a new retry window (`boneage audit retry-delivery`)."""
        with transaction(c.runtime.sessions) as session:
            moved = admin_actions.retry_delivery(session, delivery_id)
        if not moved:
            raise HTTPException(409, f"delivery {delivery_id} is not dead-lettered")
        request.state.action = f"retry delivery {delivery_id}"
        return {"delivery_id": delivery_id, "due": True}

    @app.post("/instances/{instance_id}/review", tags=["admin actions"], status_code=201)
    def review(c: Ctx, request: Request, instance_id: int, body: ReviewBody) -> dict[str, Any]:
        """Record a radiologist's verdict: accept, or their own bone age. The AI's values are
        kept; the review is stored beside them with who and when."""
        if body.accept == (body.bone_age_months is not None):
            raise HTTPException(422, "give exactly one of accept=true and bone_age_months")
        try:
            with transaction(c.runtime.sessions) as session:
                saved = queries.review_detail(record_review(
                    session, instance_id,
                    ReviewRequest(body.reader, body.bone_age_months, body.comment),
                    who(request)))
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        except ReviewError as exc:
            raise HTTPException(409, str(exc)) from None
        request.state.action = f"review of instance {instance_id}: {saved['verdict']}"
        return saved
