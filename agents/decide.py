"""decide: keeps the held table and applies approval decisions, releases, rejections and expiries.

One agent reads ``R.held`` and ``R.approvals`` together (both keyed by event id, equal partition
counts), so a decision meets its hold on the worker that owns the partition, and the held table is
written only from this stream. Effects run in a fixed order: send the outcome record and await the
broker's ack, send the provenance fragment and await it, and only then write the table. A crash
before the table write reprocesses the decision (the outcome may appear twice, same event id and
bytes, as for screen); after it, the decision id is already used and the message is skipped.

The agent takes batches. Holds (most of its records: one per held event) are written to the
table's store directly and their changelog records sent together, acknowledged before any later
record of the batch is handled and before the batch is acknowledged; a decision is handled on its
own, in order, after the holds before it. Faust's per-write table path cost ~500 µs of the event
loop per hold (docs/benchmarks.md, session 4).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import faust
import orjson

from pipeline import faustfix
from pipeline.approval import effects, rules, state as held_state
from pipeline.approval.openholds import OpenHolds, entry as open_hold
from pipeline.context import FleetContext, retrying
from pipeline.identity import IdentityError
from pipeline.outputs import Output, egress_outputs, now_iso, output_for
from pipeline.screen import screen
from pipeline.sender import send_all
from pipeline.tables import bytes_table, make_current, read_store, write_changelog, write_store
from schemas.decision import Outcome

log = logging.getLogger(__name__)
RELEASE_TRIES = 3
EXPIRE_RESEND_S = 60.0
EXPIRY_SCAN_STEP = 200  # holds decoded between two yields to the event loop


def held_table(app: faust.App, partitions: int) -> faust.Table:
    """Holds by event id: envelope (raw bytes stay in-region), status, approvals, used decision ids."""
    return bytes_table(app, "held", partitions, "Held events and their approval state, keyed by event id.")


def _source(msg: Any) -> dict[str, Any]:
    return {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}


def _parse(value: bytes | None) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


class Decider:
    """The agent's steps; ``handle_batch`` is called once per batch the stream takes."""

    def __init__(self, ctx: FleetContext) -> None:
        self.ctx = ctx
        self.waiters: dict[str, asyncio.Future] = {}
        self.expiry_sent: dict[str, float] = {}
        self.open_holds = OpenHolds()  # what the expiry timer reads instead of decoding every hold

    def approval_of(self, state: dict[str, Any] | None) -> Any:
        plan = self.ctx.plans.get((state or {}).get("dataset") or "")
        return plan.rules.approval if plan else None

    def _resolve(self, decision: dict[str, Any] | None, result: dict[str, Any]) -> None:
        waiter = self.waiters.pop(str((decision or {}).get("decision_id")), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    async def handle(self, event: Any) -> None:
        """A keyed record of ``R.approvals`` (its event current); holds go through :meth:`hold`."""
        msg = event.message
        key = msg.key
        current = held_state.decode(self.ctx.held.get(key))
        doc = _parse(msg.value)
        if doc is None or doc.get("event_id") not in (None, key.decode(errors="replace")):
            await self.refuse(key, current, doc or {}, rules.refuse("malformed_decision", "not a decision record"),
                              _source(msg))
        else:
            await self.on_decision(key, current, doc, _source(msg))

    async def handle_batch(self, events: list[Any]) -> None:
        """Every event of a batch in order: holds straight into the store, decisions one by one."""
        writes: dict[tuple[int, bytes], bytes] = {}  # (partition, key) -> value, for the changelog
        try:
            for event in events:
                msg = event.message
                if not msg.key:
                    log.warning("record without an event id key", extra={"topic": msg.topic, "offset": msg.offset})
                    continue
                # Faust's table reads and writes in a decision pick the partition from the current event
                make_current(event)
                if msg.topic == self.ctx.topics.held:
                    self.hold(msg, writes)
                else:
                    await self.flush(writes)
                    await self.handle(event)
        finally:
            make_current(None)
        await self.flush(writes)

    async def flush(self, writes: dict[tuple[int, bytes], bytes]) -> None:
        """Write the holds taken so far to the table's store (one RocksDB write batch per partition),
        send them to its changelog and await the broker's acks."""
        if writes:
            records = [(partition, key, value) for (partition, key), value in writes.items()]
            writes.clear()
            write_store(self.ctx.held, records)
            await write_changelog(self.ctx, self.ctx.held, records)

    def hold(self, msg: Any, writes: dict[tuple[int, bytes], bytes]) -> None:
        """A keyed held record: a new hold in ``writes``, which :meth:`flush` writes to the store and
        its changelog before any later decision is handled."""
        key = msg.key
        envelope = _parse(msg.value)
        if envelope is None or envelope.get("event_id") != key.decode(errors="replace"):
            log.warning("held record is not an envelope for its key", extra=_source(msg))
            return
        stored = writes.get((msg.partition, key)) or read_store(self.ctx.held, msg.partition, key)
        current = held_state.decode(stored)
        if current is not None:  # screen reprocessed a batch, or a decided hold came again: keep the first
            if current["envelope"].get("raw_sha256") != envelope.get("raw_sha256"):
                log.warning("another payload was held under an existing event id", extra=_source(msg))
            # written again all the same, as the record agent does: a batch run again (a kill -9, a
            # broker error) can find in the store a hold whose changelog record never reached the broker
            writes[(msg.partition, key)] = stored
            return
        state = held_state.new_state(envelope, _source(msg))
        writes[(msg.partition, key)] = held_state.encode(state)
        self.open_holds.add(key, state)

    async def on_decision(self, key: bytes, current: dict | None, decision: dict, source: dict) -> None:
        used = (current or {}).get("used", {}).get(str(decision.get("decision_id")))
        if used is not None and used.get("source") == source:
            return  # this very message was applied before a crash; applying it again would double it
        now = held_state.now_ms()
        approval = self.approval_of(current)
        if decision.get("action") == "expire":
            verdict = rules.check_expiry(current, approval, now)
            if verdict.kind == "expire":
                await self.finish_rejected(key, current, None, verdict, source)
            return
        if isinstance(decision.get("refused"), dict):  # the API refused it already; record, never apply
            refused = decision["refused"]
            verdict = rules.refuse(str(refused.get("code", "refused"))[:64], str(refused.get("message", ""))[:300],
                                   refused.get("approver") if isinstance(refused.get("approver"), dict) else None)
        else:
            verdict = rules.check_decision(current, decision, approval, self.identity(decision), now)
        if verdict.kind == "refuse":
            await self.refuse(key, current, decision, verdict, source)
            if verdict.code == "hold_expired":
                expiry = rules.check_expiry(current, approval, now)
                if expiry.kind == "expire":
                    await self.finish_rejected(key, held_state.decode(self.ctx.held.get(key)), None, expiry, source)
        elif verdict.kind == "record":
            new = effects.note_approval(current, decision, verdict, source)
            await self.audit(key, new, verdict, decision, source)
            self.ctx.held[key] = held_state.encode(new)
            self._resolve(decision, {"status": "approval_recorded", "message": verdict.message})
        elif verdict.kind == "reject":
            await self.finish_rejected(key, current, decision, verdict, source)
        elif verdict.kind == "release":
            await self.release(key, effects.note_approval(current, decision, verdict, source), decision, verdict, source)

    def identity(self, decision: dict[str, Any]) -> Any:
        try:
            return self.ctx.verifier.verify(decision.get("token"))
        except IdentityError as exc:
            return exc

    async def audit(self, key: bytes, state: dict | None, verdict: rules.Verdict, decision: dict | None,
                    source: dict, destination: dict | None = None, name: str | None = None,
                    destinations: list[dict] | None = None) -> None:
        fragment = effects.fragment(state, key.decode(errors="replace"), verdict, decision, source, destination,
                                    name, self.ctx.plans.get((state or {}).get("dataset") or ""))
        if destinations:  # a release also goes to every egress profile of the dataset
            fragment["destinations"] = destinations
        await send_all(self.ctx.producer, [Output(self.ctx.topics.provenance, key, orjson.dumps(fragment), [])])

    async def refuse(self, key: bytes, current: dict | None, decision: dict, verdict: rules.Verdict,
                     source: dict) -> None:
        log.info("decision refused", extra={"event_id": key.decode(errors="replace"), "code": verdict.code})
        await self.audit(key, current, verdict, decision, source)
        noted = effects.note_refusal(current, decision, verdict, source)
        if noted is not None:
            self.ctx.held[key] = held_state.encode(noted)
        self._resolve(decision, {"status": "refused", "error": verdict.code, "message": verdict.message})

    async def finish_rejected(self, key: bytes, current: dict, decision: dict | None, verdict: rules.Verdict,
                              source: dict) -> None:
        plan = self.ctx.plans[current["dataset"]]
        reason = "expired" if verdict.kind == "expire" else "rejected_by_approver"
        out = effects.rejected_output(current, plan, reason, verdict.message)
        await self.complete(key, current, decision, verdict, source, out, "expired" if reason == "expired" else "rejected")

    async def complete(self, key: bytes, current: dict, decision: dict | None, verdict: rules.Verdict,
                       source: dict, out: Output, status: str, more: list[Output] | None = None) -> None:
        metas = await send_all(self.ctx.producer, [out, *(more or [])])
        meta = metas[0]
        destination = {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}
        destinations = [{"topic": m.topic, "partition": m.partition, "offset": m.offset} for m in metas]
        await self.audit(key, current, verdict, decision, source, destination, status,
                         destinations if more else None)
        self.ctx.held[key] = held_state.encode(effects.finish(current, status, decision, verdict, destination, source))
        self.open_holds.discard(key)
        self.ctx.metrics.approval_latency.observe(held_state.age_seconds(current))
        self._resolve(decision, {"status": status, "destination": f"{meta.topic}[{meta.partition}]@{meta.offset}"})

    async def release(self, key: bytes, current: dict, decision: dict, verdict: rules.Verdict, source: dict) -> None:
        """Re-screen the exact held bytes with the dataset's plan and emit the one outcome."""
        plan = self.ctx.plans[current["dataset"]]
        record = effects.held_record(current)
        for _ in range(RELEASE_TRIES):
            result = screen(record, plan, release=True)
            if result.outcome is not Outcome.HELD:
                break
        if result.outcome is Outcome.HELD:  # detection kept timing out: stay held, approvals kept
            refusal = rules.refuse("release_incomplete", "screening for release did not finish; approve again to retry")
            await self.refuse(key, current, {**decision, "decision_id": None}, refusal, source)
            self._resolve(decision, {"status": "refused", "error": refusal.code, "message": refusal.message})
            return
        result.event_id = current["event_id"]
        status = {Outcome.CLEARED: "released", Outcome.REJECTED: "rejected", Outcome.DEADLETTER: "deadletter"}[result.outcome]
        await self.complete(key, current, decision, verdict, source, output_for(result, record, plan), status,
                            egress_outputs(result, record, plan))

    async def expire_stale(self) -> None:
        """Timer: ask the agent (through ``R.approvals``) to expire every local hold past its TTL."""
        now, clock = held_state.now_ms(), time.monotonic()
        holds = self.open_holds
        if holds.due_for_rebuild():
            await self.rebuild_open_holds()
        stale = []
        for key in holds.due(now, self.ttl_of):
            st = held_state.decode(self.ctx.held.get(key))  # the store decides, not the index
            if st is None or st["status"] != held_state.HELD:
                holds.discard(key)
                continue
            if rules.check_expiry(st, self.approval_of(st), now).kind == "expire" and \
                    clock - self.expiry_sent.get(st["event_id"], -1e9) > EXPIRE_RESEND_S:
                stale.append(key)
        oldest = holds.oldest()
        self.ctx.metrics.on_holds(len(holds.entries), max(0.0, (now - oldest[0]) / 1000) if oldest else 0.0,
                                  (self.ttl_of(oldest[1]) or 0) if oldest else 0)
        if stale:
            records = [Output(self.ctx.topics.approvals, key, orjson.dumps(
                {"action": "expire", "event_id": key.decode(errors="replace"), "decision_id": f"expire-{uuid.uuid4().hex}",
                 "at": now_iso(), "system": True}), []) for key in stale]
            await send_all(self.ctx.producer, records)
            for key in stale:
                self.expiry_sent[key.decode(errors="replace")] = clock

    def ttl_of(self, dataset: str) -> float | None:
        """Seconds a hold of ``dataset`` may wait for a decision (None: it never expires)."""
        plan = self.ctx.plans.get(dataset)
        approval = plan.rules.approval if plan else None
        return approval.ttl_seconds if approval else None

    async def rebuild_open_holds(self) -> None:
        """Index every open hold of the store: after a rebalance, and now and then besides."""
        generation = self.open_holds.rebuilding()
        entries: dict[bytes, tuple[int, str]] = {}
        for i, (key, value) in enumerate(list(self.ctx.held.items())):
            if i % EXPIRY_SCAN_STEP == EXPIRY_SCAN_STEP - 1:
                # decoding a hold costs 10-20 µs: ~4,000 of them held the event loop 40-80 ms
                await asyncio.sleep(0)
            st = held_state.decode(value)
            if st is not None and st["status"] == held_state.HELD:
                entries[key] = open_hold(st)
        self.open_holds.rebuilt(entries, generation)


def register_decide(app: faust.App, ctx: FleetContext) -> Decider:
    partitions = ctx.policy.topology.held_partitions
    ctx.held = held_table(app, partitions)
    decider = Decider(ctx)
    ctx.extras["decider"] = decider
    topic = app.topic(ctx.topics.held, ctx.topics.approvals, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw", partitions=partitions)

    async def decide(stream: faust.StreamT) -> None:
        async with ctx.crash_on_error("decide"):
            async for events in stream.take_events(ctx.settings.batch_size, within=ctx.settings.batch_within_s):
                await ctx.gate()
                await retrying("decide", lambda events=events: decider.handle_batch(events),
                               lambda events=events: faustfix.current(app, events))

    app.agent(topic, name="decide")(decide)

    @app.timer(interval=ctx.settings.expiry_check_s)
    async def expire_holds() -> None:
        if not app.rebalancing:
            await decider.expire_stale()

    @app.on_partitions_revoked.connect
    async def forget_open_holds(app: faust.App, revoked: Any, **kwargs: Any) -> None:  # noqa: ARG001
        decider.open_holds.invalidate()  # the next pass indexes the partitions owned then

    @app.on_partitions_assigned.connect
    async def index_open_holds_again(app: faust.App, assigned: Any, **kwargs: Any) -> None:  # noqa: ARG001
        decider.open_holds.invalidate()

    return decider
