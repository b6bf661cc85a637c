"""Screen helpers (pipeline/screenpool.py): real spawned processes screening under the example policy.

The pool must decide exactly what ``screen()`` decides in the worker, and prepare exactly what
``prepare()`` prepares from it (pipeline.outputs), whatever the split, and a
helper that dies or hangs must cost nothing but time: its share is screened in the worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil

from pipeline import screenpool
from pipeline.benchmark.events import bench_events
from pipeline.faults import fault_hook
from pipeline.keys import KeyRing
from pipeline.outputs import prepare
from pipeline.plan import compile_plans
from pipeline.policy import load_policy
from pipeline.screen import screen
from pipeline.screenpool import MIN_SHARE, ScreenPool, min_batch
from schemas.decision import Outcome, RawRecord

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "pipeline" / "examples" / "eu-policy.yaml"
KEYS = KeyRing({"pii-hmac-2026": b"screen-pool-test-secret-0123456789abcdef"})
BATCH = 100  # the pool's batch size here: helpers take batches of 50 records and more


def _policy():  # noqa: ANN202 - LoadedPolicy
    """The example policy with a detection budget no loaded test machine runs out of: a record
    held for its budget in one screening and cleared in the other is timing, not a difference."""
    loaded = load_policy(POLICY)
    for name, dataset in list(loaded.policy.datasets.items()):
        loaded.policy.datasets[name] = dataset.model_copy(update={"detection_budget_ms": 10_000.0})
    return loaded


def _batch(count: int) -> tuple[list[RawRecord], list]:
    """Bench events plus records that end early (bad JSON, a bad event-id header, no value)."""
    plans = compile_plans(_policy(), KEYS)
    records, owners = [], []
    for i, event in enumerate(bench_events(count)):
        records.append(RawRecord(f"eu.raw.{event.dataset}", 0, i, event.key, event.value, tuple(event.headers), 1))
        owners.append(plans[event.dataset])
    odd = [(b"{not json", ()), (orjson.dumps({"a": 1}), (("event-id", b"\xff"),)), (None, ())]
    for j, (value, headers) in enumerate(odd):
        records.append(RawRecord("eu.raw.payments", 1, j, None, value, headers, 1))
        owners.append(plans["payments"])
    return records, owners


def _local(records: list[RawRecord], plans: list, fault=None) -> list:  # noqa: ANN001
    """What the pool must give: every record screened and prepared in this process."""
    return _view([prepare(screen(r, p, fault), r, p) for r, p in zip(records, plans, strict=True)])


def _timeless(value: bytes) -> object:
    """A held, rejected or dead-letter envelope without the clock readings each build takes."""
    if not value.startswith(b'{"event_id"'):
        return value
    return {k: v for k, v in orjson.loads(value).items() if k not in ("at", "held_at_ms")}


def _view(prepared: list) -> list:
    """Prepared records, comparable across builds: envelopes without their clock readings, and
    fragments without the hashes of those envelopes."""
    return [(p.event_id, p.outcome, p.reason, p.finding_types, p.mask_strategies,
             [(t, k, _timeless(v), h, sealable) for t, k, v, h, sealable in p.outputs],
             {k: v for k, v in orjson.loads(p.fragment + b"}").items() if k != "emitted_sha256"},
             [{k: v for k, v in orjson.loads(b"{" + d).items() if k != "sha256"} for d in p.destinations])
            for p in prepared]


async def _pool(size: int = 1, faults: str | None = None) -> ScreenPool:
    pool = ScreenPool(size, _policy(), KEYS, faults, budget_ms=200, batch_size=BATCH)
    await pool.start()
    assert len(pool.helpers) == size
    return pool


async def test_the_pool_decides_what_screen_decides_record_by_record():
    records, plans = _batch(300)
    pool = await _pool()
    try:
        seconds: list[float] = []
        for _ in range(3):  # shares move as the costs are measured
            decisions = await pool.screen(records, plans, None, seconds.append)
            assert _view(decisions) == _local(records, plans)
        assert pool.helpers[0].cost > 0  # the helper took a share each time
        assert len(seconds) == 3 * len(records)  # one screening time per record, wherever it ran
        assert {d.outcome for d in decisions} == {o.value for o in Outcome}
    finally:
        pool.stop()


async def test_shares_follow_the_measured_cost_and_small_batches_stay_in_the_worker():
    pool = ScreenPool(2, None, None, None, budget_ms=50)
    assert pool.shares(1000) == []  # no helper started
    pool.helpers = [screenpool.Helper(0), screenpool.Helper(1)]
    assert pool.shares(2 * MIN_SHARE - 1) == []
    assert pool.shares(300) == [100, 100]  # nothing measured: every side alike
    pool.own_cost, pool.helpers[0].cost, pool.helpers[1].cost = 1.0, 1.0, 3.0
    assert pool.shares(700) == [300, 100]  # the worker is as fast as helper 0, three times helper 1
    pool.helpers[1].cost = 100.0
    assert pool.shares(700)[1] == 0  # a share below MIN_SHARE goes to the worker
    assert pool.min_batch == min_batch(500) == 250
    assert pool.shares(249) == []  # no backlog: the worker screens alone
    assert sum(pool.shares(249, helpers_only=True)) == 249  # fetched ahead: all to helpers
    assert min_batch(10) == 2 * MIN_SHARE


async def test_a_small_batch_never_goes_to_a_helper():
    records, plans = _batch(min_batch(BATCH) - 10)
    pool = await _pool()
    try:
        for _ in range(2):
            assert _view(await pool.screen(records, plans, None, lambda s: None)) == _local(records, plans)
        assert pool.helpers[0].cost == 0.0 and pool.own_cost > 0
    finally:
        pool.stop()


async def test_the_fault_hook_reaches_the_helper():
    records, plans = _batch(200)
    pool = await _pool(faults="detection:raise")
    try:
        share = pool.shares(len(records))[0]
        decisions = await pool.screen(records, plans, None, lambda s: None)
        assert pool.helpers[0].cost > 0
        faulty = fault_hook("detection:raise")
        assert _view(decisions[:share]) == _local(records[:share], plans[:share], faulty)
        assert _view(decisions[share:]) == _local(records[share:], plans[share:])  # the worker passed no hook
        assert sum(d.reason == "internal_error" for d in decisions[:share]) > share // 2
    finally:
        pool.stop()


async def test_a_helper_killed_mid_batch_costs_only_time(monkeypatch, caplog):
    monkeypatch.setattr(screenpool, "RESTART_AFTER_S", 0.0)
    records, plans = _batch(400)
    expected = _local(records, plans)
    pool = await _pool()
    try:
        await pool.screen(records, plans, None, lambda s: None)  # measured, so the helper gets a share
        pid = pool.helpers[0].process.pid
        os.kill(pid, signal.SIGKILL)
        assert _view(await pool.screen(records, plans, None, lambda s: None)) == expected
        assert "screen helper 0 lost" in caplog.text
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        # the next batch starts a new helper in the background, which takes its share once started
        assert _view(await pool.screen(records, plans, None, lambda s: None)) == expected
        deadline = time.monotonic() + 60
        while not pool.helpers:
            assert time.monotonic() < deadline, "no new helper"
            await asyncio.sleep(0.05)
        assert pool.helpers[0].process.pid != pid
        assert _view(await pool.screen(records, plans, None, lambda s: None)) == expected
        assert pool.helpers[0].cost > 0
    finally:
        pool.stop()


async def test_overlapping_calls_queue_their_shares_and_get_their_own_answers():
    """The screen stage fetches two batches ahead: both go to the helper at once, the second waits
    in its socket, and each call gets its own records back."""
    records, plans = _batch(300)
    first, second = (records[:150], plans[:150]), (records[150:], plans[150:])
    pool = await _pool()
    try:
        screened = await asyncio.gather(*(pool.screen(r, p, None, lambda s: None, helpers_only=True)
                                          for r, p in (first, second, first)))
        assert [_view(s) for s in screened] == [_local(*first), _local(*second), _local(*first)]
        assert pool.helpers[0].cost > 0 and pool.own_cost == 0.0  # the helper screened all of it
    finally:
        pool.stop()


async def test_a_queued_share_has_time_for_the_share_ahead_of_it(monkeypatch):
    """A share waiting behind another is answered after both are screened: its deadline counts the
    records of both, or a healthy helper behind a slow share would be taken for hung."""
    records, plans = _batch(200)
    pool = await _pool()
    deadlines: list[int] = []
    deadline = pool._deadline
    monkeypatch.setattr(pool, "_deadline", lambda count: deadlines.append(count) or deadline(count))
    try:
        first, second = (records[:120], plans[:120]), (records[120:], plans[120:])
        screened = await asyncio.gather(*(pool.screen(r, p, None, lambda s: None, helpers_only=True)
                                          for r, p in (first, second)))
        assert [_view(s) for s in screened] == [_local(*first), _local(*second)]
        # the second share's deadline covers the first's 120 records too
        assert sorted(deadlines) == [120, len(records)]
    finally:
        pool.stop()


async def test_a_helper_killed_with_shares_queued_costs_only_time(caplog):
    records, plans = _batch(200)
    first, second = (records[:100], plans[:100]), (records[100:], plans[100:])
    pool = await _pool(faults="detection:delay:0.01")  # ~1 s a share: killed while both wait
    try:
        calls = [asyncio.ensure_future(pool.screen(r, p, None, lambda s: None, helpers_only=True))
                 for r, p in (first, second)]
        deadline = time.monotonic() + 30
        while len(pool.helpers[0]._waiting) < 2:
            assert time.monotonic() < deadline, "the shares were not sent"
            await asyncio.sleep(0.01)
        os.kill(pool.helpers[0].process.pid, signal.SIGKILL)
        screened = await asyncio.gather(*calls)
        # both shares screened again in the worker (with its own, absent, fault hook)
        assert [_view(s) for s in screened] == [_local(*first), _local(*second)]
        assert pool.helpers == [] and caplog.text.count("screen helper 0 lost") == 1
    finally:
        pool.stop()


async def test_a_hung_helper_is_replaced_by_the_worker(monkeypatch):
    records, plans = _batch(200)
    pool = await _pool(faults="detection:delay:0.05")
    monkeypatch.setattr(pool, "_deadline", lambda count: 0.5)
    try:
        started = time.monotonic()
        decisions = await pool.screen(records, plans, None, lambda s: None)
        assert time.monotonic() - started < 60
        assert pool.helpers == []  # stopped and dropped after its deadline
        # the worker screened the helper's share again, with its own (absent) fault hook
        assert _view(decisions) == _local(records, plans)
    finally:
        pool.stop()


HELPER_OWNER = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from pipeline.keys import KeyRing
from pipeline.outputs import prepare
from pipeline.policy import load_policy
from pipeline.screenpool import ScreenPool

async def main():
    pool = ScreenPool(1, load_policy(Path({policy!r})), KeyRing({{"pii-hmac-2026": b"x" * 40}}), None, 50)
    await pool.start()
    print(pool.helpers[0].process.pid, flush=True)
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_helper_never_outlives_its_worker(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(HELPER_OWNER.format(root=str(ROOT), policy=str(POLICY)))
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        helper = int(owner.stdout.readline())
        assert psutil.pid_exists(helper)
        owner.kill()  # kill -9: no clean-up code runs in the worker
        owner.wait(10)
        deadline = time.monotonic() + 20
        while psutil.pid_exists(helper) and psutil.Process(helper).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the helper outlived its worker"
            time.sleep(0.05)
    finally:
        owner.kill()


async def test_a_pool_whose_helpers_cannot_start_screens_in_the_worker(caplog):
    records, plans = _batch(100)
    pool = ScreenPool(1, load_policy(POLICY), KeyRing({}), None, budget_ms=50)  # the policy needs a key
    await pool.start()
    assert pool.helpers == [] and "did not start" in caplog.text
    assert _view(await pool.screen(records, plans, None, lambda s: None)) == _local(records, plans)
    await asyncio.sleep(0)


async def test_a_lost_helper_is_killed_at_once_not_waited_for():
    records, plans = _batch(60)
    pool = await _pool(faults="detection:delay:0.05")
    try:
        helper = pool.helpers[0]
        process = helper.process
        await helper.send([(plans[i].name, screenpool._fields(records[i])) for i in range(60)])  # ~3 s of work
        started = time.monotonic()
        pool._lose(helper, RuntimeError("test"))
        assert time.monotonic() - started < 1.5  # a clean stop would wait 2 s for it first
        assert process.exitcode == -signal.SIGKILL and pool.helpers == []
    finally:
        pool.stop()
