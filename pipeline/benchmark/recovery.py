"""Table recovery speed: a fresh worker rebuilds a provenance table of N entries from its changelog.

The changelog ``R.residency-provenance-changelog`` of a region of its own is filled with N folded
provenance records (~1 KB each, like a cleared payment's), keyed by event id. A worker then starts
with an empty data directory; Faust reads the whole changelog into RocksDB before the worker serves.
Recovery runs from the first ``/health/ready`` answer that says "recovering tables" to the first that
says ready; entries/s is N over that time.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.benchmark.fleet import region_policy
from pipeline.benchmark.measure import PeakRss
from pipeline.provenance import fold
from pipeline.topics import RegionTopics


def _template() -> dict[str, Any]:
    return {
        "event_id": "", "stage": "screen", "at": "2026-11-29T10:00:00.123Z", "received_at": "2026-11-29T10:00:00.120Z",
        "region": "eu", "dataset": "payments", "policy_hash": "sha256:" + "ab" * 32,
        "source": {"topic": "eu.raw.payments", "partition": 1, "offset": 0, "timestamp_ms": 1795946400000},
        "producer": None, "decision": "cleared", "reason": "cleared", "detail": "",
        "findings": [{"type": "card_number", "path": "note"}, {"type": "email", "path": "context.description"}],
        "masking": [{"path": p, "strategy": s, "key_id": k} for p, s, k in (
            ("card.number", "partial", None), ("card.holder", "redact", None),
            ("subject.email", "hash", "pii-hmac-2026"), ("subject.iban", "partial", None))],
        "destination": {"topic": "eu.cleared.payments", "partition": 2, "offset": 0},
        "raw_sha256": "5d" * 32, "emitted_sha256": "9c" * 32,
    }


async def fill_changelog(bootstrap: str, topic: str, entries: int, say) -> float:  # noqa: ANN001
    """Write ``entries`` provenance records; return the average value size."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=512 * 1024,
                                compression_type=None)
    await producer.start()
    fragment, size = _template(), 0
    try:
        pending, shown = [], time.monotonic()
        for n in range(entries):
            fragment["event_id"] = key = f"payments-{n:08d}"
            fragment["source"]["offset"] = fragment["destination"]["offset"] = n
            value = fold(None, fragment)
            size += len(value)
            pending.append(await producer.send(topic, value, key=key.encode()))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                if time.monotonic() - shown > 5:
                    shown = time.monotonic()
                    say(f"recovery: wrote {n + 1:,}/{entries:,} changelog entries")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return size / max(1, entries)


def _readiness(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as response:  # noqa: S310
            return "ready" if orjson.loads(response.read()).get("ready") else "not ready"
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return "recovering" if b"recovering tables" in body else "not ready"
    except OSError:
        return "down"


async def recovery_stage(run, entries: int) -> dict[str, object]:  # noqa: ANN001 - pipeline.benchmark.run.Run
    from pipeline.benchmark.run import provision

    region = f"{run.loaded.policy.region}-rec"
    loaded = region_policy(run.run_dir, region)
    await provision(run.bootstrap, loaded, [])
    changelog = RegionTopics(region).changelog("provenance")
    avg = await fill_changelog(run.bootstrap, changelog, entries, run.say)
    run.say(f"recovery: {entries:,} entries ({avg:.0f} bytes each) in {changelog}; starting a fresh worker")
    worker = run.env.worker(loaded, run.bootstrap, "recovery").start()
    port = int(worker.command[worker.command.index("--web-port") + 1])
    started, recovering, shown = time.monotonic(), None, time.monotonic()
    try:
        with PeakRss(worker.proc.pid) as rss:
            while True:
                state = await asyncio.to_thread(_readiness, port)
                now = time.monotonic()
                if state == "recovering" and recovering is None:
                    recovering = now
                if state == "ready" and recovering is not None:
                    break
                if not worker.alive or now - started > run.options.stage_timeout_s:
                    raise RuntimeError(f"recovery: worker {'exited' if not worker.alive else 'timed out'}")
                if now - shown > 10:
                    shown = now
                    run.say(f"recovery: {state} after {now - started:.0f}s")
                await asyncio.sleep(0.1)
    finally:
        worker.stop()
    seconds = now - recovering
    run.say(f"recovery: {entries:,} entries in {seconds:.1f}s = {entries / seconds:,.0f} entries/s "
            f"(start to ready {now - started:.1f}s, peak RSS {rss.peak_mb:.0f} MB)")
    return {"entries": entries, "entry_bytes_avg": round(avg), "seconds": round(seconds, 1),
            "entries_per_s": round(entries / seconds), "start_to_ready_s": round(now - started, 1),
            "rss_mb": rss.peak_mb}
