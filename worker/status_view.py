"""`boneage status` as tables for a terminal."""

from __future__ import annotations

from rich.table import Table

from service.cli_common import console
from service.status_report import StatusReport


def render_status(report: StatusReport) -> None:
    waiting = "unknown (broker unreachable)" if report.queue_waiting is None \
        else str(report.queue_waiting)
    if report.queue.startswith("embedded"):
        waiting = "in-process"
    console.print(f"[bold]boneage status[/] at {report.at}: queue {report.queue}, "
                  f"messages waiting {waiting}")
    counts = Table(title="instances")
    counts.add_column("status")
    counts.add_column("count", justify="right")
    for name, count in report.instances.items():
        counts.add_row(name, str(count))
    console.print(counts)
    oldest = report.oldest_unfinished
    console.print("oldest unfinished: " + ("none" if oldest is None else
                  f"instance {oldest['id']} {oldest['status']} for {oldest['in_status_s']} s "
                  f"(received {oldest['waiting_s']} s ago)"))
    workers = Table(title="workers (seen in the last 24 h)")
    for column in ("name", "kind", "alive", "last seen (s)", "model", "processed", "leases"):
        workers.add_column(column)
    for w in report.workers:
        leases = ", ".join(f"#{lease['instance_id']} ({lease['expires_in_s']} s left)"
                           for lease in w.leases) or "-"
        workers.add_row(w.name, w.kind, "yes" if w.alive else "[red]no[/]", str(w.last_seen_s),
                        w.model_version or "-", str(w.processed), leases)
    console.print(workers)
    deliveries = ", ".join(f"{k} {v}" for k, v in report.deliveries.items())
    console.print(f"deliveries: {deliveries}")
    for d in report.failing_destinations:
        console.print(f"[yellow]failing[/]: {d['destination']}: {d['pending']} pending, up to "
                      f"{d['max_attempts']} attempts, next try in {d['next_attempt_in_s']} s")
    if report.deliveries.get("DEAD"):
        console.print("[red]dead-lettered deliveries need an admin: boneage audit list[/]")
