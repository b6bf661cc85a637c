"""Crash: kill -9 the worker at random points; nothing is lost and no event id reaches a topic twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import orjson
import pytest

from pipeline.admin import apply_topics
from pipeline.generator import generate
from pipeline.harness import collect, count_records, outcome_topics, produce, read_topic
from pipeline.topics import RegionTopics, topic_specs
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EVENTS = 20_000


def _outcomes_so_far(kafka_bootstrap, loaded) -> int:
    return asyncio.run(count_records(kafka_bootstrap, outcome_topics(loaded.policy)))


def test_when_the_worker_is_killed_three_times_then_every_event_has_one_outcome_once(
        kafka_bootstrap, policy_factory, worker_factory):
    rng = random.Random(20261129)
    loaded = policy_factory(region="crash")
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    mix = list(generate(EVENTS, seed=99))
    ids = {e.event_id for e in mix}
    asyncio.run(produce(kafka_bootstrap, "crash", mix))

    worker = worker_factory(loaded, name="w0")
    for kill in range(3):
        # Kill at a random point while the backlog drains: after a random share of the events has an outcome.
        target = rng.randint(EVENTS * kill // 4 + 500, EVENTS * (kill + 1) // 4)
        wait_for(lambda t=target: _outcomes_so_far(kafka_bootstrap, loaded) >= t, 180,
                 f"{target} outcomes before kill {kill + 1}", interval=0.2)
        worker.kill()
        worker = worker_factory(loaded, name="w0")  # same data dir: RocksDB survives a kill -9

    outcomes = asyncio.run(collect(kafka_bootstrap, loaded.policy, ids, timeout_s=300))
    assert worker.alive, worker.log_tail()
    missing = ids - outcomes.outcome.keys()
    assert not missing, f"{len(missing)} events without an outcome"
    several = {e: o for e, o in outcomes.outcome.items() if len(o) > 1}
    assert not several, f"{len(several)} events with more than one outcome"
    twice = {key: n for key, n in outcomes.copies.items() if n > 1}
    if twice:  # say what happened to them: the provenance has every emission with its coordinates
        fragments = asyncio.run(read_topic(kafka_bootstrap, RegionTopics("crash").provenance))
        for m in fragments:
            f = orjson.loads(m.value)
            if (f["event_id"], f["decision"]) in twice:
                print("DUP", f["event_id"], f["source"], f["destination"], f["at"])
        print("\n".join(line for line in worker.log_path.read_text().splitlines() if "recovered" in line or "Starting" in line[:60]))
    assert not twice, f"{len(twice)} event ids more than once on an outcome topic, e.g. {next(iter(twice))}"
    wrong = Counter((e.expected, next(iter(outcomes.of(e.event_id)))) for e in mix
                    if outcomes.of(e.event_id) != {e.expected})
    assert not wrong, f"unexpected outcomes (expected, got): {dict(wrong)}"

    changelog = RegionTopics("crash").changelog("provenance")
    wait_for(lambda: {m.key.decode() for m in asyncio.run(read_topic(kafka_bootstrap, changelog))} >= ids,
             120, "a provenance entry for every event")
    fragments = asyncio.run(read_topic(kafka_bootstrap, RegionTopics("crash").provenance))
    decided = {orjson.loads(m.value)["event_id"] for m in fragments}
    assert decided >= ids
