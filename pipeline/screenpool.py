"""Helper processes that screen part of each batch while the worker's own thread screens the rest.

``screen()`` is pure CPU work (parse, detect, mask) and held ~47% of the worker's main thread in
``residency bench``, while the 2-core machine sat ~35% idle: one Python thread cannot use a second
core. Each helper is a spawned process with the same compiled policy; per batch the worker sends a
share of the records over a socket pair, screens the rest itself meanwhile, and waits for the
helpers' answers before it sends anything. A helper answers with each record prepared to send
(``pipeline.outputs.Prepared``: output records and provenance fragment, so the worker's thread only
attaches seals and the broker's offsets). Sending, commits and the at-least-once order stay in the
worker, so a helper adds no state that a crash could lose.

- Shares follow measured cost: each side's time per record is tracked (moving average) and the
  next batch is split so that all sides finish together; a busy machine shifts work back to the
  worker's thread by itself.
- Shares queue: the screen stage hands the helpers the next two batches of a backlog while it sends
  the one in hand, so a helper finishes one share and reads the next at once. Answers come back in
  the order the shares were sent (one reader per helper resolves them).
- Batches under half the batch size (a stream the worker keeps up with, the latency a user waits
  for) are screened in the worker only: a round trip to a helper costs more than it saves.
- Producer identity is checked in the worker before a record goes to a helper (the worker
  refreshes the producers' keys), and the verified producer goes with the record to the helper.
- A helper that dies, hangs past its deadline or answers nonsense is stopped and its share is
  screened again in the worker (``screen()`` has no side effects), then a new helper is started
  after ``RESTART_AFTER_S``. The worker keeps running; the log says so (never with a payload).
- A helper exits when its socket closes, so one never outlives its worker (kill -9 included).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from pipeline.outputs import Prepared, prepare
from pipeline.screen import FaultHook, admission, screen
from pipeline.settings import Settings
from schemas.decision import Decision, RawRecord

log = logging.getLogger(__name__)

MIN_SHARE = 16  # records: a helper gets no share smaller than this (its round trip costs ~0.3 ms)
# A batch smaller than half the batch size (``RESIDENCY_BATCH_SIZE``) is screened in the worker
# alone, and none is fetched ahead after it. Helpers pay when there is a backlog (full batches); on
# a stream the worker keeps up with, batches are small and fetching ahead and a round trip to a
# helper, on a machine the broker also uses, add latency: at 1,000 events/s ingress-to-cleared p99
# was 172-254 ms without helpers, 559-569 ms with them on every batch, 349-623 ms from 128 records
# and 134-250 ms from 250 (residency bench, batch size 500, session 7).
MIN_BATCH_SHARE = 0.5
START_TIMEOUT_S = 60.0  # importing and compiling the policy in a fresh process
RESTART_AFTER_S = 30.0
_HEADER = struct.Struct("!I")
_SOCKET_BUFFER = 4 * 2**20
_SMOOTHING = 0.3  # weight of the latest batch in the moving averages of time per record


def min_batch(batch_size: int) -> int:
    """The smallest batch that helpers screen (see ``MIN_BATCH_SHARE``)."""
    return max(2 * MIN_SHARE, int(batch_size * MIN_BATCH_SHARE))


# --- the helper process ------------------------------------------------------------------------

def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def helper_main(sock: socket.socket, loaded: Any, keys: Any, fault_spec: str | None,
                logs: tuple[str, str] | None = None) -> None:
    """A helper's life: compile the policy, say ready, then screen each batch it is sent until the
    worker closes the socket. Records arrive as ``(dataset, RawRecord fields, verified producer)``;
    each goes back prepared to send (pipeline.outputs.Prepared), in order, with the seconds its
    screening took."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle; EOF stops us
    from pipeline import heap
    from pipeline.faults import fault_hook
    from pipeline.logs import configure_logging
    from pipeline.plan import compile_plans

    if logs is not None:
        configure_logging(*logs)
    heap.tune()
    plans = compile_plans(loaded, keys)
    fault: FaultHook | None = fault_hook(fault_spec) if fault_spec else None
    heap.freeze()
    _send_frame(sock, pickle.dumps(("ready", os.getpid())))
    while True:
        header = _recv_exactly(sock, _HEADER.size)
        if header is None:
            return
        frame = _recv_exactly(sock, _HEADER.unpack(header)[0])
        if frame is None:
            return
        began = time.perf_counter()
        out = []
        for dataset, fields, producer in pickle.loads(frame):
            started = time.perf_counter()
            record, plan = RawRecord(*fields), plans[dataset]
            decision = screen(record, plan, fault, check_identity=False)
            seconds = time.perf_counter() - started
            decision.producer = producer
            out.append((prepare(decision, record, plan), seconds))
        _send_frame(sock, pickle.dumps((out, time.perf_counter() - began), protocol=pickle.HIGHEST_PROTOCOL))


# --- the worker's side -------------------------------------------------------------------------

class HelperLost(Exception):
    """A helper died, hung or answered out of protocol; its share is screened in the worker."""


class Helper:
    """One helper process and the worker's end of its socket.

    Shares are pipelined: ``send`` writes a share and returns a future for its answer at once, so a
    second share can wait in the socket while the helper screens the first (the helper never idles
    while the worker is busy elsewhere). One reader task reads the answers in the order the shares
    were sent and resolves their futures; when the socket fails, every waiting future fails."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None
        self.sock: socket.socket | None = None
        self.cost = 0.0  # moving average of the helper's seconds per record (0: not measured yet)
        # answers due, in the order the shares were sent, with each share's record count
        self._waiting: deque[tuple[asyncio.Future, int]] = deque()
        self._reader: asyncio.Task | None = None
        self._writing = asyncio.Lock()  # one frame at a time on the socket
        self._failure: HelperLost | None = None

    async def start(self, loaded: Any, keys: Any, fault_spec: str | None, logs: tuple[str, str] | None) -> None:
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):  # a batch's frame in one go, not 200 KB at a time
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        ours.setblocking(False)
        self.sock = ours
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=helper_main, args=(theirs, loaded, keys, fault_spec, logs),
                                       name=f"residency-screen-{self.index}", daemon=True)
        try:
            self.process.start()
        finally:
            theirs.close()  # the child has its own copy; ours closing is what ends it
        hello = await asyncio.wait_for(self._frame(), START_TIMEOUT_S)
        if not (isinstance(hello, tuple) and hello[:1] == ("ready",)):
            raise HelperLost("the helper did not start")
        self._reader = asyncio.ensure_future(self._read_answers())

    async def _read(self, size: int) -> memoryview:
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        buffer = memoryview(bytearray(size))
        got = 0
        while got < size:
            n = await loop.sock_recv_into(self.sock, buffer[got:])
            if n == 0:
                raise HelperLost("the helper closed its socket")
            got += n
        return buffer

    async def _frame(self) -> Any:
        try:
            header = await self._read(_HEADER.size)
            return pickle.loads(await self._read(_HEADER.unpack(header)[0]))
        except (ConnectionError, OSError) as exc:
            raise HelperLost(f"the helper's socket failed ({type(exc).__name__})") from None

    async def _read_answers(self) -> None:
        """Resolve the waiting futures with the helper's answers, in order, until the socket fails."""
        try:
            while True:
                answer = await self._frame()
                if not self._waiting:
                    raise HelperLost("the helper answered what it was not sent")
                waiter, _ = self._waiting.popleft()
                if not waiter.done():  # a caller that was cancelled no longer waits
                    waiter.set_result(answer)
        except HelperLost as exc:
            self._fail(exc)
        except (pickle.PickleError, EOFError, ValueError, TypeError, AttributeError):
            self._fail(HelperLost("the helper answered out of protocol"))
        except asyncio.CancelledError:
            self._fail(HelperLost("the helper was stopped"))
            raise

    def _fail(self, exc: HelperLost) -> None:
        self._failure = self._failure or exc
        while self._waiting:
            waiter, _ = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(self._failure)
                waiter.exception()  # retrieved: a caller that gave up must not make asyncio log it

    async def send(self, items: list[tuple[str, tuple, Any]]) -> tuple[asyncio.Future, int]:
        """Send a share; returns, once the socket holds all of it, the future of its answer (see
        ``receive``) and the records the helper has to screen before it can answer: the shares
        queued ahead of this one and this one (its deadline counts them all). Shares queue in the
        socket: the helper screens them one after another."""
        if self.sock is None or self._failure is not None:
            raise self._failure or HelperLost("the helper was stopped")
        payload = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        async with self._writing:
            queued = sum(count for _, count in self._waiting) + len(items)
            self._waiting.append((waiter, len(items)))  # before the frame: its answer may come back at once
            try:
                await loop.sock_sendall(self.sock, _HEADER.pack(len(payload)) + payload)
            except (ConnectionError, OSError) as exc:
                self._fail(HelperLost(f"the helper's socket failed ({type(exc).__name__})"))
                raise self._failure from None
        return waiter, queued

    async def receive(self, waiter: asyncio.Future, count: int, deadline_s: float) -> list[tuple[Prepared, float]]:
        """The prepared records of a share sent (``waiter`` is what ``send`` returned) with the
        seconds each one's screening took; notes the helper's time per record (its own, not the
        time the share waited behind another or to be read)."""
        try:
            answer = await asyncio.wait_for(asyncio.shield(waiter), deadline_s)
        except TimeoutError:
            raise HelperLost(f"the helper did not answer within {deadline_s:.0f}s") from None
        try:
            out, elapsed = answer
            if len(out) != count or not all(isinstance(item[0], Prepared) for item in out):
                raise ValueError
        except (TypeError, ValueError, IndexError):
            raise HelperLost("the helper answered out of protocol") from None
        self.cost = _average(self.cost, elapsed / max(1, count))
        return out

    def stop(self, kill: bool = False) -> None:
        """Close the socket (the helper's loop ends at EOF) and reap the process; ``kill``: a lost
        helper may be stuck mid-batch, so it is killed at once rather than waited for. Shares still
        waiting for an answer fail (their callers screen them in the worker)."""
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self._fail(HelperLost("the helper was stopped"))
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.process is not None:
            if not kill:
                self.process.join(timeout=2)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=2)
            self.process = None


class ScreenPool:
    """The worker's helpers (``RESIDENCY_SCREEN_PROCESSES`` of them) and how it splits a batch."""

    def __init__(self, size: int, loaded: Any, keys: Any, fault_spec: str | None, budget_ms: float,
                 logs: tuple[str, str] | None = None,
                 batch_size: int = Settings.model_fields["batch_size"].default) -> None:
        self.size = size
        self.min_batch = min_batch(batch_size)
        self._material = (loaded, keys, fault_spec, logs)
        self.helpers: list[Helper] = []
        self.own_cost = 0.0  # moving average of seconds per record screened in the worker's thread
        self._budget_s = budget_ms / 1000.0
        self._restart_at: float | None = None
        self._restarting: asyncio.Future | None = None

    async def start(self) -> None:
        """Start every helper; one that does not start is logged and started again later (the
        worker screens its share meanwhile)."""
        for _ in range(self.size - len(self.helpers)):
            helper = Helper(len(self.helpers))
            try:
                await helper.start(*self._material)
            except asyncio.CancelledError:
                helper.stop()
                raise
            except (HelperLost, OSError, TimeoutError, pickle.PickleError) as exc:
                helper.stop()
                log.error("screen helper %d did not start (%s); the worker screens its share", helper.index,
                          type(exc).__name__)
                self._restart_at = time.monotonic() + RESTART_AFTER_S
                return
            self.helpers.append(helper)
        log.info("screening with %d helper process(es) beside the worker's thread", len(self.helpers))

    def stop(self) -> None:
        if self._restarting is not None:
            self._restarting.cancel()
        for helper in self.helpers:
            helper.stop()
        self.helpers = []

    def _maybe_restart(self) -> None:
        """Start missing helpers in the background once ``RESTART_AFTER_S`` has passed (a start
        takes a second or two; the batches in between are screened without them)."""
        if self._restart_at is not None and time.monotonic() >= self._restart_at and (
                self._restarting is None or self._restarting.done()):
            self._restart_at = None
            self._restarting = asyncio.ensure_future(self.start())

    def shares(self, count: int, helpers_only: bool = False) -> list[int]:
        """Records for each helper (in order), the rest being the worker's: proportional to each
        side's speed, none below ``MIN_SHARE``. ``helpers_only``: the helpers share all of them."""
        if not self.helpers or (count < self.min_batch and not helpers_only):
            return []
        own = self.own_cost or 1.0
        speeds = [1.0 / (h.cost or own) for h in self.helpers]  # unmeasured: as fast as the worker
        if helpers_only:
            out = [int(count * s / sum(speeds)) for s in speeds]
            out[0] += count - sum(out)
            return out
        total = sum(speeds) + 1.0 / own
        out = [int(count * s / total) for s in speeds]
        return [n if n >= MIN_SHARE else 0 for n in out]

    async def screen(self, records: Sequence[RawRecord], plans: Sequence[Any], fault: FaultHook | None,
                     observe: Any, helpers_only: bool = False) -> list[Prepared]:
        """Every record screened and prepared to send, as ``prepare(screen(records[i], plans[i],
        fault), records[i], plans[i])`` would give.

        ``helpers_only``: the helpers screen every record (the worker's thread has other work
        meanwhile); the worker screens only what a lost helper leaves. Calls may overlap: a share
        sent while a helper screens another waits in its socket, and answers come back in order.
        """
        self._maybe_restart()
        prepared: list[Prepared | None] = [None] * len(records)
        producers: list[Any] = [None] * len(records)
        todo: list[int] = []
        for i, (record, plan) in enumerate(zip(records, plans, strict=True)):
            admitted = admission(record, plan)
            if isinstance(admitted, Decision):
                prepared[i] = prepare(admitted, record, plan)
            else:
                producers[i] = admitted
                todo.append(i)
        shares = self.shares(len(todo), helpers_only)
        sent: list[tuple[Helper, list[int], asyncio.Future, int]] = []
        start = 0
        for helper, share in list(zip(self.helpers, shares, strict=False)):
            if not share:
                continue
            mine = todo[start:start + share]
            start += share
            try:
                waiter, queued = await helper.send([(plans[i].name, _fields(records[i]), producers[i]) for i in mine])
            except HelperLost as exc:
                self._lose(helper, exc)
                start -= share  # the worker screens these
                continue
            sent.append((helper, mine, waiter, queued))
        own = todo[start:]
        began = time.perf_counter()
        for i in own:
            prepared[i] = self._screen_here(records[i], plans[i], fault, observe, producers[i])
        if own:
            self.own_cost = _average(self.own_cost, (time.perf_counter() - began) / len(own))
        lost: list[int] = []
        for helper, mine, waiter, queued in sent:
            try:  # a share queued behind another waits for it too: its deadline covers both
                answers = await helper.receive(waiter, len(mine), self._deadline(queued))
            except HelperLost as exc:
                self._lose(helper, exc)
                lost.extend(mine)
                continue
            for i, (done, seconds) in zip(mine, answers, strict=True):
                prepared[i] = done
                observe(seconds)
        for i in lost:  # screened again here: screen() is pure, so this is the same decision
            prepared[i] = self._screen_here(records[i], plans[i], fault, observe, producers[i])
        return prepared  # type: ignore[return-value]

    @staticmethod
    def _screen_here(record: RawRecord, plan: Any, fault: FaultHook | None, observe: Any,
                     producer: Any) -> Prepared:
        """Screen in the worker's thread (identity was checked at admission) and prepare."""
        started = time.perf_counter()
        decision = screen(record, plan, fault, check_identity=False)
        observe(time.perf_counter() - started)
        decision.producer = producer
        return prepare(decision, record, plan)

    def _deadline(self, count: int) -> float:
        """How long a helper may take for ``count`` records: every record's detection budget, plus
        slack for a machine that is busy elsewhere."""
        return 10.0 + count * self._budget_s

    def _lose(self, helper: Helper, exc: Exception) -> None:
        if helper not in self.helpers:  # an overlapping call found it lost first
            return
        log.error("screen helper %d lost (%s); its records are screened in the worker, a new helper "
                  "starts in %.0fs", helper.index, exc, RESTART_AFTER_S)
        helper.stop(kill=True)
        self.helpers.remove(helper)
        self._restart_at = time.monotonic() + RESTART_AFTER_S


def _fields(record: RawRecord) -> tuple:
    return (record.topic, record.partition, record.offset, record.key, record.value, record.headers,
            record.timestamp_ms)


def _average(current: float, sample: float) -> float:
    return sample if current == 0.0 else current + _SMOOTHING * (sample - current)
