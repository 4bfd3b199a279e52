"""Prometheus `/metrics`, read from the audit DB at scrape time.

The receiver, the workers and the deliverer are separate processes (and hosts); the audit DB
is the one place that sees all of them, and it only grows, so counters taken from it are
monotonic like a process's own would be, and survive restarts. Latency histograms are built
from each instance's recorded history (service.audit.queries.stage_latencies): queue (received to
processing), processing (to the result), and delivery (receipt to the last output delivered).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.audit.queries import live_workers, rejection_reasons, stage_latencies
from service.audit.tables import (
    UNFINISHED,
    Delivery,
    DeliveryStatus,
    Instance,
    InstanceStatus,
)

BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


def histogram(name: str, documentation: str, label: str,
              series: dict[str, list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for key, values in series.items():
        ordered = sorted(values)
        buckets = [(str(bound), bisect.bisect_right(ordered, bound)) for bound in BUCKETS_S]
        buckets.append(("+Inf", len(ordered)))
        family.add_metric([key], buckets, sum_value=sum(ordered))
    return family


def model_card(model_dir: Path) -> dict[str, str]:
    """The configured model's identity from its card (no torch needed to read it)."""
    try:
        card = json.loads((model_dir / "model.json").read_text())
    except (OSError, ValueError):
        return {"name": "unknown", "version": "unknown", "weights_sha256": "", "synthetic": ""}
    return {"name": str(card.get("name")), "version": str(card.get("version")),
            "weights_sha256": str(card.get("weights_sha256", "")),
            "synthetic": str(bool(card.get("synthetic"))).lower()}


class AuditCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session], model: dict[str, str], lease_s: float,
                 queue_waiting: Callable[[], int | None]) -> None:
        self._sessions = sessions
        self._model = model
        self._lease_s = lease_s
        self._queue_waiting = queue_waiting

    def collect(self) -> Iterator[Metric]:
        with self._sessions() as session:
            yield from self._instances(session)
            yield from self._deliveries(session)
            yield histogram("boneage_stage_seconds", "Time an instance spent in each stage.",
                            "stage", stage_latencies(session))
            alive = live_workers(session, self._lease_s)
        yield GaugeMetricFamily("boneage_workers_alive",
                                "Worker processes heard from within one lease period.",
                                value=alive)
        waiting = self._queue_waiting()
        if waiting is not None:
            yield GaugeMetricFamily("boneage_queue_depth",
                                    "Messages waiting in the broker's inference queue.",
                                    value=waiting)
        info = InfoMetricFamily("boneage_model", "The configured bone-age model.")
        info.add_metric([], self._model)
        yield info

    def _instances(self, session: Session) -> Iterator[Metric]:
        counts = dict(session.execute(select(Instance.status, func.count())
                                      .group_by(Instance.status)).all())
        received = CounterMetricFamily("boneage_instances_received",
                                       "C-STORE requests answered (every status).")
        received.add_metric([], sum(counts.values()))
        yield received
        assessed = CounterMetricFamily("boneage_instances_assessed",
                                       "Instances given a bone age.")
        assessed.add_metric([], counts.get(InstanceStatus.ASSESSED, 0))
        yield assessed
        rejected = CounterMetricFamily("boneage_instances_rejected",
                                       "Instances a gate refused (or that failed), by reason.",
                                       labels=["reason"])
        for reason, count in sorted(rejection_reasons(session).items()):
            rejected.add_metric([reason], count)
        yield rejected
        by_status = GaugeMetricFamily("boneage_instances", "Instances now in each status.",
                                      labels=["status"])
        for status in InstanceStatus:
            by_status.add_metric([status.value], counts.get(status, 0))
        yield by_status
        yield GaugeMetricFamily("boneage_unfinished_instances",
                                "Received, queued or processing.",
                                value=sum(counts.get(s, 0) for s in UNFINISHED))

    def _deliveries(self, session: Session) -> Iterator[Metric]:
        rows = session.execute(select(Delivery.destination, Delivery.status, func.count(),
                                      func.sum(Delivery.attempts))
                               .group_by(Delivery.destination, Delivery.status)).all()
        made = CounterMetricFamily("boneage_deliveries_delivered",
                                   "Outputs (SR, report image) delivered.",
                                   labels=["destination"])
        dead = CounterMetricFamily("boneage_deliveries_dead",
                                   "Outputs dead-lettered after the retry window.",
                                   labels=["destination"])
        failed = CounterMetricFamily("boneage_delivery_attempts_failed",
                                     "C-STORE attempts to a destination that did not succeed.",
                                     labels=["destination"])
        pending = GaugeMetricFamily("boneage_deliveries_pending", "Outputs waiting to be sent.",
                                    labels=["destination"])
        per_destination: dict[str, dict[DeliveryStatus, tuple[int, int]]] = {}
        for destination, status, count, attempts in rows:
            per_destination.setdefault(destination, {})[status] = (count, int(attempts or 0))
        for destination, by in sorted(per_destination.items()):
            delivered = by.get(DeliveryStatus.DELIVERED, (0, 0))
            made.add_metric([destination], delivered[0])
            dead.add_metric([destination], by.get(DeliveryStatus.DEAD, (0, 0))[0])
            pending.add_metric([destination], by.get(DeliveryStatus.PENDING, (0, 0))[0])
            attempts = sum(a for _, a in by.values())
            failed.add_metric([destination], attempts - delivered[0])
        yield from (made, dead, failed, pending)


def metrics_text(collector: AuditCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
