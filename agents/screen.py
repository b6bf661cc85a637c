"""screen: one agent per dataset, from ``R.raw.D`` to exactly one outcome topic per record."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson

from pipeline.context import FleetContext
from pipeline.outputs import Output, now_iso, output_for, screen_fragment
from pipeline.plan import DatasetPlan
from pipeline.screen import screen
from pipeline.sender import send_all
from schemas.decision import Outcome, RawRecord

log = logging.getLogger(__name__)


def _raw(event: Any) -> RawRecord:
    msg = event.message
    return RawRecord(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                     tuple((k, v) for k, v in (msg.headers or ())), msg.timestamp and int(msg.timestamp * 1000))


async def screen_batch(ctx: FleetContext, plan: DatasetPlan, events: list[Any]) -> None:
    """Screen, send every outcome, then every provenance fragment (with destination offsets)."""
    received_at = now_iso()
    records = [_raw(e) for e in events]
    decisions = []
    for record in records:
        started = time.perf_counter()
        decisions.append(screen(record, plan, ctx.fault_hook))
        ctx.metrics.screen_latency.observe(time.perf_counter() - started)
    outputs = [output_for(d, r, plan) for d, r in zip(decisions, records, strict=True)]
    metas = await send_all(ctx.producer, outputs)
    acked_ms = time.time() * 1000
    for d, r in zip(decisions, records, strict=True):
        if d.outcome is Outcome.CLEARED and r.timestamp_ms:
            ctx.metrics.ingress_to_cleared.observe(max(0.0, (acked_ms - r.timestamp_ms) / 1000))
    fragments = [
        Output(ctx.topics.provenance, d.event_id.encode(),
               orjson.dumps(screen_fragment(d, r, plan, o, m.partition, m.offset, received_at)), [])
        for d, r, o, m in zip(decisions, records, outputs, metas, strict=True)
    ]
    await send_all(ctx.producer, fragments)
    ctx.metrics.on_screened(plan.name, decisions)


def register_screen(app: faust.App, ctx: FleetContext, plan: DatasetPlan) -> None:
    topic = app.topic(plan.raw_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=plan.rules.partitions)

    async def screen_records(stream: faust.StreamT) -> None:
        async with ctx.crash_on_error(f"screen-{plan.name}"):
            async for events in stream.take_events(ctx.settings.batch_size, within=ctx.settings.batch_within_s):
                await screen_batch(ctx, plan, events)

    app.agent(topic, name=f"screen-{plan.name}")(screen_records)
