"""screen: one agent per dataset, from ``R.raw.D`` to exactly one outcome topic per record."""

from __future__ import annotations

import faust

from pipeline.batch import screen_batch
from pipeline.context import FleetContext
from pipeline.plan import DatasetPlan


def register_screen(app: faust.App, ctx: FleetContext, plan: DatasetPlan) -> None:
    topic = app.topic(plan.raw_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=plan.rules.partitions)

    async def screen_records(stream: faust.StreamT) -> None:
        async with ctx.crash_on_error(f"screen-{plan.name}"):
            async for events in stream.take_events(ctx.settings.batch_size, within=ctx.settings.batch_within_s):
                await screen_batch(ctx, plan, events)

    app.agent(topic, name=f"screen-{plan.name}")(screen_records)
