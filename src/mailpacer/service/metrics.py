"""``/metrics`` for Prometheus: messages by state, replies by class, connections and rate per
route, learned limits. Read at each scrape from the store and the engine (no global registry)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailpacer.core.limits import Limits
from mailpacer.service.errors import ERRORS
from mailpacer.service.runtime import service_of

__all__ = ["router"]

router = APIRouter(tags=["metrics"], responses=ERRORS)
_LIMITS = ("connections", "rate_per_minute", "messages_per_connection", "quota", "window_messages")


class _Snapshot(Collector):
    """The metrics of one scrape, gathered beforehand."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


@router.get(
    "/metrics",
    response_class=Response,
    responses={"200": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    """The Prometheus text format."""
    service = service_of(request)
    messages = GaugeMetricFamily(
        "mailpacer_messages", "Messages by campaign and state", labels=["campaign", "state"]
    )
    campaigns = GaugeMetricFamily("mailpacer_campaigns", "Campaigns by state", labels=["state"])
    replies = CounterMetricFamily(
        "mailpacer_replies",
        "Replies by campaign and class (verdict), since the service started",
        labels=["campaign", "verdict"],
    )
    connections = GaugeMetricFamily(
        "mailpacer_route_connections", "Open SMTP connections per route", labels=["route"]
    )
    rate = GaugeMetricFamily(
        "mailpacer_route_rate", "Messages accepted per second per route", labels=["route"]
    )
    limits = GaugeMetricFamily(
        "mailpacer_route_limit", "Learned limits per route", labels=["route", "limit"]
    )
    by_state: dict[str, int] = {}
    routes: dict[str, float] = {}
    for record in await service.db.list_campaigns():
        by_state[record.state.value] = by_state.get(record.state.value, 0) + 1
        stats = await service.db.stats(record.id)
        for state, count in stats.counts.items():
            messages.add_metric([str(record.id), state.value], count)
        live = service.broker.progress.get(record.id, {})
        running = record.state.value in ("running", "waiting")
        routes[record.route_key] = routes.get(record.route_key, 0.0) + (
            float(live.get("rate", 0.0)) if running else 0.0
        )
    for name, count in sorted(by_state.items()):
        campaigns.add_metric([name], count)
    for (campaign, verdict), count in sorted(service.broker.replies.items()):
        replies.add_metric([str(campaign), verdict], count)
    engine_routes = service.engine.routes if service.engine is not None else {}
    for key, total in sorted(routes.items()):
        runtime = engine_routes.get(key)
        connections.add_metric([key], runtime.open if runtime is not None else 0)
        rate.add_metric([key], total)
        learned = await service.db.load_route_limits(key)
        if learned:
            known = Limits.from_dict(learned)
            for name in _LIMITS:
                value = getattr(known, name)
                if value is not None:
                    limits.add_metric([key, name], float(value))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([messages, campaigns, replies, connections, rate, limits]))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
