"""The dashboard page: plain server-rendered HTML with an inline SVG chart, no scripts and no
build step, refreshed by the browser every 15 s. Everything on it comes from the same audit
queries as `boneage audit stats` and `boneage status`, so the page and the CLI agree.
"""

from __future__ import annotations

from html import escape
from typing import Any

from sqlalchemy.orm import Session

from service.audit import queries

RECENT = 20
CHART_POINTS = 100
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2rem;color:#1b1f23;background:#f6f8fa}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.warn{background:#fff3cd;border:1px solid #e0b400;padding:.5rem .8rem;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:.6rem}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;background:#fff} td,th{border:1px solid #d0d7de;padding:.25rem .5rem;
font-size:.85rem;text-align:left;vertical-align:middle} th{background:#eaeef2}
img.thumb{max-height:90px} .bad{color:#b42318;font-weight:600} .muted{color:#6e7781}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[str]], empty: str, table_id: str) -> str:
    if not rows:
        return f'<p class="muted" id="{table_id}">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def latency_chart(points: list[tuple[int, str, float]], width: int = 720,
                  height: int = 180) -> str:
    """Receipt-to-delivered seconds of the newest deliveries (an instance's outputs to one
    destination), as an SVG bar chart."""
    if not points:
        return '<p class="muted" id="latency-chart">nothing delivered yet</p>'
    top = max(seconds for _, _, seconds in points) or 1.0
    bar = min(width / len(points), 24.0)
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - seconds / top * (height - 20):.1f}" '
        f'width="{max(bar - 1, 1):.1f}" height="{seconds / top * (height - 20):.1f}" '
        f'fill="#0969da"><title>instance {instance_id} to {_e(destination)}: '
        f'{seconds:.2f} s</title></rect>'
        for i, (instance_id, destination, seconds) in enumerate(points))
    return (f'<svg id="latency-chart" width="{width}" height="{height + 20}" role="img" '
            f'aria-label="receipt to delivered, seconds">'
            f'<text x="0" y="12" font-size="11">max {top:.2f} s</text>{bars}'
            f'<text x="0" y="{height + 16}" font-size="11">the last {len(points)} '
            f'deliveries, oldest left, newest right</text></svg>')


def _cards(stats: dict[str, Any], queue_waiting: int | None) -> str:
    counts = stats["instances_by_status"]
    unfinished = sum(counts.get(s, 0) for s in ("RECEIVED", "QUEUED", "PROCESSING"))
    cards = [("received", sum(counts.values())), ("assessed", counts.get("ASSESSED", 0)),
             ("rejected", counts.get("REJECTED", 0)), ("failed", counts.get("FAILED", 0)),
             ("unfinished", unfinished),
             ("queue depth" if queue_waiting is not None else "queue: in-process",
              "-" if queue_waiting is None else queue_waiting),
             ("delivered", stats["deliveries_by_status"].get("DELIVERED", 0)),
             ("dead letters", stats["deliveries_by_status"].get("DEAD", 0))]
    return '<div class="grid" id="counts">' + "".join(
        f'<div class="card" data-count="{_e(name)}"><b>{_e(value)}</b>{_e(name)}</div>'
        for name, value in cards) + "</div>"


def _recent(session: Session) -> str:
    rows = []
    for s in queries.list_instances(session, queries.InstanceFilter(limit=RECENT)):
        interval = s["interval_95"]
        thumb = (f'<img class="thumb" alt="report image of instance {s["id"]}" '
                 f'src="/instances/{s["id"]}/report-image.png" loading="lazy">'
                 if s["status"] == "ASSESSED" else "")
        rows.append([
            _e(s["id"]), _e(s["received_at"][:19]), _e(s["status"]),
            _e(s["status_reason"] or ""), _e(s["accession_number"] or ""),
            "" if s["bone_age_months"] is None else f"{s['bone_age_months']:.1f} months",
            "" if interval is None else f"{interval[0]:.0f}&ndash;{interval[1]:.0f}",
            _e(s["confidence"] or ""), thumb])
    return _table(["id", "received (UTC)", "status", "reason", "accession", "bone age",
                   "95% interval", "confidence", "report image"], rows,
                  "nothing received yet", "recent")


def _model_banner(model: dict[str, str]) -> str:
    kind = ("synthetic demo weights (trained on phantoms)" if model.get("synthetic") == "true"
            else "research model trained on RSNA 2017 data")
    return (f'<p class="warn" id="model">Model {_e(model.get("name"))} {_e(model.get("version"))}'
            f": {kind}. Not clinically validated, not for diagnostic use.</p>")


def render_dashboard(session: Session, queue_waiting: int | None,
                     model: dict[str, str]) -> str:
    stats = queries.audit_stats(session)
    latency = stats["latency_seconds"]
    percentile_rows = [[_e(stage), _e(f["count"]), _e(f["p50"]), _e(f["p90"]), _e(f["p99"])]
                       for stage, f in latency.items()]
    reasons = [[_e(reason), _e(count)] for reason, count in
               sorted(stats["rejection_reasons"].items(), key=lambda item: -item[1])]
    failing = [[_e(d["destination"]), _e(d["pending"]),
                f'<span class="bad">{_e(d["dead"])}</span>' if d["dead"] else "0",
                _e(d["last_error"])] for d in stats["failing_destinations"]]
    agree = stats["agreement"]
    agreement = ("no reviews yet" if not agree["reviewed"] else
                 f"{agree['reviewed']} reviewed; accepted as given {agree['accepted_share']:.0%}; "
                 f"mean |reader - AI| {agree['mae_months']:.1f} months; within 12 months "
                 f"{agree['within_12_months_share']:.0%}")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="15"><title>boneage-pacs dashboard</title>
<style>{STYLE}</style></head><body>
<h1>boneage-pacs</h1>{_model_banner(model)}
<h2>Now</h2>{_cards(stats, queue_waiting)}
<h2>Latency: receipt to delivered</h2>
{latency_chart(queries.delivered_latencies(session, CHART_POINTS))}
{_table(["stage", "count", "p50 s", "p90 s", "p99 s"], percentile_rows, "", "percentiles")}
<h2>Rejection reasons</h2>{_table(["reason", "instances"], reasons, "none", "reasons")}
<h2>Recent instances</h2>{_recent(session)}
<h2>Failing destinations</h2>
{_table(["destination", "pending", "dead", "last error"], failing, "none", "failing")}
<h2>Agreement with radiologists</h2><p id="agreement">{_e(agreement)}</p>
</body></html>"""


def login_page(token_required: bool, *, failed: bool = False) -> str:
    message = ("No token is configured: the API listens on loopback only and needs no login."
               if not token_required else
               "Wrong token." if failed else "Enter the admin token (BONEAGE_ADMIN_TOKEN).")
    form = ('<form method="post" action="/login"><input type="password" name="token" '
            'autocomplete="off"> <button>Sign in</button></form>' if token_required else
            '<a href="/">dashboard</a>')
    return (f"<!doctype html><html><head><title>boneage-pacs: sign in</title>"
            f"<style>{STYLE}</style></head><body><h1>boneage-pacs</h1><p>{_e(message)}</p>"
            f"{form}</body></html>")
