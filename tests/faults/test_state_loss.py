"""State loss: a worker's RocksDB directory is deleted; its tables come back from their changelogs.

Provenance entries read through the worker's API are the same before and after, the held inbox is
the same, and a hold made before the loss is approved after it and released exactly once.
"""

from __future__ import annotations

import asyncio
import random
import shutil

import orjson
import pytest

from pipeline.harness import collect, produce
from pipeline.heldcli import call
from tests.faults.scenarios import check_events, http, mixed_events, ready, say, wait_until, web_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 1_500


def _inbox(worker) -> set[str] | None:  # noqa: ANN001
    status, body = http(worker, "/held/")
    doc = orjson.loads(body) if status == 200 else {}
    return {h["event_id"] for h in doc.get("held", [])} if doc.get("complete") else None


def _provenance(worker, event_id: str) -> dict | None:  # noqa: ANN001
    status, body = http(worker, f"/provenance/{event_id}/")
    return orjson.loads(body) if status == 200 else None


def test_when_the_rocksdb_directory_is_deleted_then_tables_are_rebuilt_and_a_hold_is_still_approvable(
        fleet_factory, local_idp, fault_seed):
    fleet = fleet_factory("state")
    mix = mixed_events(EVENTS, fault_seed)
    worker = fleet.worker("w1")
    asyncio.run(produce(fleet.bootstrap, fleet.region, mix))
    check = check_events(fleet.bootstrap, fleet.loaded, mix)
    assert check.ok, check.summary()

    rng = random.Random(fault_seed)
    sample = rng.sample([e.event_id for e in mix], 40)
    wait_until(lambda: ready(worker), 60, "the worker to be ready")
    before = {e: wait_until(lambda e=e: _provenance(worker, e), 30, f"provenance of {e}") for e in sample}
    held_before = wait_until(lambda: _inbox(worker), 30, "the held inbox")
    expected_held = {e.event_id for e in mix if e.expected == "held"}
    assert held_before == expected_held
    hold = sorted(e.event_id for e in mix if e.expected == "held" and e.dataset == "payments")[0]

    worker.kill()
    shutil.rmtree(worker.data_dir)
    say(f"state loss: deleted {worker.data_dir}; restarting")
    worker = fleet.worker("w1")
    wait_until(lambda: ready(worker), 120, "the worker to be ready after the state loss")

    after = {e: wait_until(lambda e=e: _provenance(worker, e), 60, f"provenance of {e} after the loss") for e in sample}
    assert after == before
    lost = [e.event_id for e in mix if _provenance(worker, e.event_id) is None]
    assert lost == [], f"{len(lost)} events without provenance after the state loss"
    assert wait_until(lambda: _inbox(worker), 30, "the held inbox after the loss") == held_before

    url = f"http://127.0.0.1:{web_port(worker)}"
    status, held = call("GET", f"{url}/held/{hold}/")
    assert status == 200 and held["status"] == "held", held
    token = local_idp.mint("alice", ["payments-approvers"])
    status, body = call("POST", f"{url}/held/{hold}/approve", token,
                        {"justification": "checked after the state loss", "payload_sha256": held["raw_sha256"],
                         "policy_hash": held["policy_hash"]})
    assert (status, body.get("status")) == (200, "released"), body

    wait_until(lambda: "cleared" in asyncio.run(collect(fleet.bootstrap, fleet.loaded.policy, {hold}, 5)).of(hold),
               30, "the released hold on the cleared topic")
    outcomes = asyncio.run(collect(fleet.bootstrap, fleet.loaded.policy, {e.event_id for e in mix}, timeout_s=30))
    assert outcomes.of(hold) == {"held", "cleared"}
    assert max(outcomes.copies.values()) == 1
    # provenance is folded by the record agent after the release is answered: wait for it, briefly
    wait_until(lambda: (_provenance(worker, hold) or {}).get("outcome") == "released", 30,
               "the release in the hold's provenance")
