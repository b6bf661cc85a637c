"""HTTP views served by every worker on its Faust web port: health, metrics, provenance lookup."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View

from pipeline import looplag
from pipeline.context import FleetContext
from pipeline.health import watch_broker
from pipeline.lag import source_lags


def _json(view: View, data: Any, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(data), content_type="application/json", status=status)


def register_web(app: faust.App, ctx: FleetContext) -> None:
    """Health, ``/metrics`` (ours and Faust's sensor, one registry) and ``/provenance/{event_id}/``."""
    setup_prometheus_sensors(app, "/metrics", registry=ctx.metrics.registry, name_prefix="faust")
    health = ctx.health

    @app.page("/health/live")
    async def live(self: View, request: Request) -> Response:
        return _json(self, {"status": "alive"})

    @app.page("/health/ready")
    async def ready(self: View, request: Request) -> Response:
        problems = health.problems(app)
        ctx.metrics.ready.set(0 if problems else 1)
        return _json(self, {"ready": not problems, "problems": problems}, 200 if not problems else 503)

    @app.page("/provenance/{event_id}/")
    class ProvenanceView(View):
        @app.table_route(table=ctx.provenance, match_info="event_id")
        async def get(self, request: Request, event_id: str) -> Response:
            value = ctx.provenance.get(event_id.encode())
            if value is None:
                return _json(self, {"event_id": event_id, "error": "no provenance for this event id"}, 404)
            return self.bytes(value, content_type="application/json")

    # the Faust agents' sources (record: R.provenance; decide: R.held and R.approvals); the screen
    # stage reports the raw topics. A stall on R.held went unseen while only R.provenance was here.
    sources = {ctx.topics.provenance, ctx.topics.held, ctx.topics.approvals}
    ctx.metrics.audit_checkpoint_age.set_function(ctx.audit.checkpoint_age_seconds)

    @app.timer(interval=5.0)
    async def measure_lag() -> None:
        lags = await source_lags(app, sources)
        if ctx.screen is not None:
            lags.update(await ctx.screen.lags())
        ctx.metrics.on_lag(lags)

    @app.task
    async def watch_event_loop() -> None:
        await looplag.watch(ctx.metrics.event_loop_lag)

    @app.task
    async def start_broker_watch() -> None:
        # table_route asks the producer which partition a key is in; the producer only knows
        # topics it has metadata for, so fetch the changelog's before the first lookup.
        producer = app.producer._ensure_producer()  # noqa: SLF001 - Faust exposes no public call
        await producer.partitions_for(ctx.provenance.changelog_topic.get_topic_name())
        health.guards_passed = True  # the worker only reaches its tasks after preflight passed
        asyncio.ensure_future(watch_broker(health, ctx.settings.bootstrap_servers))
