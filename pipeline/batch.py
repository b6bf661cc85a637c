"""One batch of the screen agent: screen every record, send each outcome once, record provenance.

Sending follows :mod:`pipeline.effects`: commit the previous batch, write an intent, then send; after
a crash the events the previous owner already emitted are not sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from pipeline.effects import TP, Emitted
from pipeline.outputs import Output, Prepared, fragment_json, now_iso, outputs_of, prepare
from pipeline.plan import DatasetPlan
from pipeline.screen import screen
from pipeline.sender import send_all
from pipeline.topics import key_partition
from schemas.decision import Outcome, RawRecord

def partition_for(output: Output, event_id: str, partitions: int) -> int:
    """The partition the default Kafka partitioner picks for the key (the event id when keyless)."""
    return key_partition(output.key if output.key is not None else event_id.encode(), partitions)


class FenceClosed(Exception):  # noqa: N818 - a state, not an error
    """The rack fence closed while a batch was being screened; it is fetched again once it opens."""


def committed_offsets(ctx: Any) -> dict[TP, int]:
    """The screen stage's committed offset per owned raw partition (the next offset to read)."""
    return ctx.screen.committed if ctx.screen is not None else {}


def _offset_ranges(records: Sequence[RawRecord]) -> dict[TP, tuple[int, int]]:
    ranges: dict[TP, tuple[int, int]] = {}
    for r in records:
        tp = (r.topic, r.partition)
        first, last = ranges.get(tp, (r.offset, r.offset))
        ranges[tp] = (min(first, r.offset), max(last, r.offset))
    return ranges


async def _already_emitted(ctx: Any, records: Sequence[RawRecord], screened: Sequence[Prepared],
                           owners: Sequence[int], outputs: Sequence[Output]) -> dict[int, Emitted]:
    """Outputs (by index) the previous owner already sent, found by event id and destination topic."""
    skip: dict[int, Emitted] = {}
    for j, (i, out) in enumerate(zip(owners, outputs, strict=True)):
        r, d = records[i], screened[i]
        found = (await ctx.effects.recovered((r.topic, r.partition))).lookup(r.offset, d.event_id, out.topic)
        if found is not None:
            skip[j] = found
    return skip


async def _screen_all(ctx: Any, plans: Sequence[DatasetPlan], records: Sequence[RawRecord]) -> list[Prepared]:
    if ctx.screen_pool is not None:  # helper processes screen part of the batch (pipeline/screenpool.py)
        return await ctx.screen_pool.screen(records, plans, ctx.fault_hook, ctx.metrics.screen_latency.observe)
    screened = []
    for plan, record in zip(plans, records, strict=True):
        started = time.perf_counter()
        decision = screen(record, plan, ctx.fault_hook)
        ctx.metrics.screen_latency.observe(time.perf_counter() - started)
        screened.append(prepare(decision, record, plan))
    return screened


def flatten(groups: Sequence[tuple[DatasetPlan, list[RawRecord]]]) -> tuple[list[DatasetPlan], list[RawRecord]]:
    """The records of every ``(plan, records)`` group in order, with the plan of each."""
    plans: list[DatasetPlan] = []
    records: list[RawRecord] = []
    for plan, raw in groups:
        plans.extend([plan] * len(raw))
        records.extend(raw)
    return plans, records


async def screen_ahead(ctx: Any, groups: Sequence[tuple[DatasetPlan, list[RawRecord]]]) -> list[Prepared]:
    """Every record of ``groups`` screened and prepared by the helper processes alone (the
    worker's thread is sending the batch before): what ``screen_batch(..., screened=)`` takes."""
    plans, records = flatten(groups)
    return await ctx.screen_pool.screen(records, plans, ctx.fault_hook, ctx.metrics.screen_latency.observe,
                                        helpers_only=True)


async def screen_batch(ctx: Any, groups: Sequence[tuple[DatasetPlan, list[RawRecord]]], *,
                       screened: Awaitable[list[Prepared]] | None = None,
                       ahead: Callable[[], Awaitable[None]] | None = None,
                       received_at: str | None = None,
                       provenance_before: Awaitable[Any] | None = None) -> asyncio.Future | None:
    """Screen the records of every ``(plan, records)`` group of a fetch together (one send of outcomes
    and one of provenance for all); return once every outcome record is acknowledged, with the send
    of the batch's provenance records still on its way (None when the batch sent nothing).

    The caller awaits that send before it commits the batch's offsets, so a commit only ever covers
    batches whose provenance the broker holds; the next batch need not wait for it. Waiting here
    kept each provenance round trip between a batch and the next fetch: with it moved off that
    path, the median ingress-to-cleared latency at 1,250 events/s fell by 40-60% (medians of
    interleaved pairs 138 to 81 ms and 253 to 92 ms; docs/benchmarks.md, session 14).

    ``screened``: every record of ``groups`` screened and prepared, already on its way (:func:`screen_ahead`).
    ``ahead``: called once this batch is screened and before it is sent, so that the next batch can
    be fetched and screened by the helpers while this one waits for the broker.
    ``provenance_before``: the previous batch's provenance send, awaited before this batch's goes
    out (one in flight; a failure surfaces here, and the batch fails as if its own send had).
    """
    received_at = received_at or now_iso()
    plans, records = flatten(groups)
    # records this process already sent (a redelivery without a rebalance) are not sent again
    fresh = {id(r) for _, raw in groups for r in ctx.effects.fresh(raw)}
    keep = [i for i, r in enumerate(records) if id(r) in fresh]
    plans, records = [plans[i] for i in keep], [records[i] for i in keep]
    if screened is not None:
        decided = await screened  # every record of groups, in order
        prepared = [decided[i] for i in keep]
    else:
        prepared = await _screen_all(ctx, plans, records) if records else []
    if ahead is not None:
        await ahead()
    if not records:
        if provenance_before is not None:
            await asyncio.shield(provenance_before)  # a stop cancels the wait, not the send
        return None
    # One outcome record per event, plus one per egress profile when cleared; owners[j] is the
    # index of the event that outputs[j] belongs to.
    owners, outputs = [], []
    for i, p in enumerate(prepared):
        for out in outputs_of(p, plans[i]):
            owners.append(i)
            outputs.append(out)
    partitions = [partition_for(o, prepared[i].event_id, ctx.partitions[o.topic]) for o, i in zip(outputs, owners, strict=True)]
    coords: dict[int, Emitted] = await _already_emitted(ctx, records, prepared, owners, outputs)
    pending = [j for j in range(len(outputs)) if j not in coords]
    if ctx.fence is not None and ctx.fence.closed:  # a broker outside the policy's racks joined: send nothing
        raise FenceClosed
    if pending:
        destinations = {(outputs[j].topic, partitions[j]) for j in pending}
        committed = committed_offsets(ctx)
        due = {source: (first, last) for source, (first, last) in _offset_ranges(records).items()
               if not ctx.effects.covered(source, first, last, committed.get(source) or 0, destinations)}
        if due:  # one more round trip (watermarks) and an acknowledged intent before any output
            highwaters = await ctx.effects.highwaters(destinations)
            intents = [ctx.effects.intent(source, first, last, committed.get(source) or 0, highwaters)
                       for source, (first, last) in due.items()]
            await send_all(ctx.producer, [Output(ctx.topics.intents, k, v, []) for k, v in intents])
        metas = await send_all(ctx.producer, [outputs[j] for j in pending], [partitions[j] for j in pending])
        ctx.effects.acked(metas)
        coords.update({j: Emitted(m.topic, m.partition, m.offset) for j, m in zip(pending, metas, strict=True)})
    _observe_latency(ctx, records, prepared)
    sent: dict[int, list[int]] = {}
    for j, i in enumerate(owners):
        sent.setdefault(i, []).append(j)
    # One provenance record per partition of R.provenance, holding the fragments of the events whose
    # id the default partitioner puts there (the table and its lookups are partitioned by event id).
    by_partition: dict[int, list[bytes]] = {}
    provenance_partitions = ctx.policy.topology.audit_partitions
    decided_at, received = orjson.dumps(now_iso()), orjson.dumps(received_at)
    for i, p in enumerate(prepared):
        places = [(coords[j].partition, coords[j].offset) for j in sent[i]]
        fragment = fragment_json(p, places, received, decided_at)
        by_partition.setdefault(key_partition(p.event_id.encode(), provenance_partitions), []).append(fragment)
    parts = sorted(by_partition)
    if provenance_before is not None:
        await asyncio.shield(provenance_before)  # a stop cancels the wait, not the send
    provenance = asyncio.ensure_future(send_all(
        ctx.producer, [Output(ctx.topics.provenance, None, b"[" + b",".join(by_partition[n]) + b"]", [])
                       for n in parts], parts))
    ctx.effects.processed(records)
    by_dataset: dict[str, list[Prepared]] = {}
    for plan, p in zip(plans, prepared, strict=True):
        by_dataset.setdefault(plan.name, []).append(p)
    for dataset, screened in by_dataset.items():
        ctx.metrics.on_screened(dataset, screened)
    return provenance


def _observe_latency(ctx: Any, records: Sequence[RawRecord], screened: Sequence[Prepared]) -> None:
    acked_ms = time.time() * 1000
    for d, r in zip(screened, records, strict=True):
        if d.outcome == Outcome.CLEARED and r.timestamp_ms:
            ctx.metrics.ingress_to_cleared.observe(max(0.0, (acked_ms - r.timestamp_ms) / 1000))
