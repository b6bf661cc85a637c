"""``residency demo``: the whole topology on a synthetic mix, from nothing but the repository.

Starts a broker (or uses KAFKA_BOOTSTRAP_SERVERS), provisions topics from the example policy, starts a
worker, produces the mix, waits for every outcome, prints a summary, and stops what it started,
on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

from pipeline import broker, interrupts
from pipeline.admin import apply_topics
from pipeline.audit import generate_signing_key, load_public_keys, load_signing_key, verify
from pipeline.auditcli import read_trail
from pipeline.generator import GeneratedEvent, generate
from pipeline.harness import collect, leaked, produce
from pipeline.heldcli import demo_walkthrough
from pipeline.identity import LocalIssuer
from pipeline.policy import load_policy
from pipeline.runner import WorkerProcess
from pipeline.topics import topic_specs
from pipeline.trace import read_provenance

EXAMPLE_POLICY = Path(__file__).parent / "examples" / "eu-policy.yaml"


class WorkerDied(RuntimeError):
    """The demo's worker exited while the demo waited for outcomes."""


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _bar(label: str) -> callable:
    last = [0.0]

    def progress(done: int, total: int) -> None:
        interrupts.check()
        now = time.monotonic()
        if now - last[0] > 1.0 or (total and done >= total):
            last[0] = now
            say(f"{label}: {done}/{total}" if total else f"{label}: {done}")

    return progress


def _tag(events: list[GeneratedEvent], run: str) -> None:
    """Make event ids unique per run, so a reused broker's old records are never counted."""
    for e in events:
        e.event_id = f"{run}-{e.event_id}"
        e.headers = [("event-id", e.event_id.encode())]


def write_demo_keys(path: Path) -> None:
    path.write_text(json.dumps({"pii-hmac-2026": secrets.token_urlsafe(48)}))
    path.chmod(0o600)


def run_demo(events: int, home: Path, port: int = 0, serve: bool = False) -> int:
    """Run the demo; returns the exit code (0 when every event has its expected outcome and nothing leaked)."""
    interrupts.install()  # Ctrl-C and SIGTERM both stop the demo and everything it started
    home.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="demo-", dir=home))
    loaded = load_policy(EXAMPLE_POLICY)
    choice, worker = None, None
    keep_dir = True
    try:
        say(f"policy {EXAMPLE_POLICY.name} (region {loaded.policy.region}, hash {loaded.hash[:19]}...)")
        ports = [port, port + 1] if port else broker.free_ports(2)
        choice = broker.resolve_bootstrap(os.environ, run_dir / "kafka", port=ports[0],
                                          controller_port=ports[1], report=say)
        say(f"broker: {choice.kind} at {choice.bootstrap}")
        report = asyncio.run(apply_topics(choice.bootstrap, topic_specs(loaded.policy)))
        if not report.ok:
            for problem in report.problems:
                say(f"topic problem: {problem}")
            return 1
        say(f"topics: {len(report.created)} created, {len(report.present)} already present")
        keys_file = run_dir / "keys.json"
        write_demo_keys(keys_file)
        signing_key = generate_signing_key()
        (run_dir / "audit-public.pem").write_text(load_signing_key(signing_key).public_key_pem())
        idp = LocalIssuer.create(run_dir / "idp")
        worker = WorkerProcess(EXAMPLE_POLICY, choice.bootstrap, run_dir / "data", broker.free_port(),
                               run_dir / "worker.log", {"RESIDENCY_KEYS_FILE": str(keys_file),
                                                        "RESIDENCY_AUDIT_SIGNING_KEY": signing_key,
                                                        "RESIDENCY_ATTESTATION_KEY": generate_signing_key(),
                                                        "RESIDENCY_JWKS": str(idp.jwks_path),
                                                        "RESIDENCY_JWT_ISSUER": idp.issuer,
                                                        "RESIDENCY_JWT_AUDIENCE": idp.audience}).start()
        say(f"worker started (pid {worker.proc.pid}, log {worker.log_path})")
        code = _exercise(choice.bootstrap, loaded, events, run_dir.name, worker,
                         load_signing_key(signing_key).public_key_pem())
        url = f"http://127.0.0.1:{worker.command[worker.command.index('--web-port') + 1]}"
        if not demo_walkthrough(url, idp.dir, say):
            code = code or 1
        if serve:
            say(f"console: {url}/console/  (a token: residency idp token --dir {idp.dir} --sub you "
                f"--groups payments-approvers); Ctrl-C stops everything")
            while worker.alive:
                interrupts.check()
                time.sleep(1)
        if code == 0:
            keep_dir = False
        return code
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    except broker.BrokerError as exc:
        say(f"broker: {exc}")
        return 1
    finally:
        if worker is not None:
            worker.stop(timeout=20)
            say("worker stopped")
        if choice is not None:
            choice.stop()
            say("broker stopped" if choice.started_here else "broker left running (not ours)")
        if keep_dir:
            say(f"logs and data kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def _exercise(bootstrap: str, loaded, count: int, run: str, worker: WorkerProcess,  # noqa: ANN001
              public_pem: str) -> int:
    mix = list(generate(count, seed=int(time.time())))
    _tag(mix, run)
    expected = {e.event_id: e.expected for e in mix}
    asyncio.run(produce(bootstrap, loaded.policy.region, mix, _bar("produced")))
    show = _bar("events with an outcome")

    def progress(done: int, total: int) -> None:
        if not worker.alive:
            raise WorkerDied(worker.log_tail())
        show(done, total)

    try:
        outcomes = asyncio.run(collect(bootstrap, loaded.policy, set(expected), timeout_s=180, progress=progress))
    except WorkerDied as exc:
        say(f"the worker stopped; last lines of its log:\n{exc}")
        return 1
    counts = outcomes.counts()
    missing = [e for e in expected if not outcomes.of(e)]
    wrong = [e for e, want in expected.items() if outcomes.of(e) and outcomes.of(e) != {want}]
    leaks = leaked(outcomes, mix)
    say("summary:")
    for outcome in ("cleared", "held", "rejected", "deadletter"):
        say(f"  {outcome:<11} {counts.get(outcome, 0):>6}")
    say(f"  {'total':<11} {sum(counts.values()):>6} of {count} produced; "
        f"{len(missing)} without outcome, {len(wrong)} unexpected, {len(leaks)} raw values leaked")
    _show_sample(outcomes, bootstrap, loaded, mix)
    audit_ok = _verify_audit(bootstrap, loaded, public_pem, len(mix))
    return 0 if not (missing or wrong or leaks) and audit_ok else 1


def _verify_audit(bootstrap: str, loaded, public_pem: str, events: int) -> bool:  # noqa: ANN001
    """Wait until the audit trail covers every event (it trails the outcomes slightly), then verify it."""
    keys = load_public_keys([public_pem])
    deadline = time.monotonic() + 60
    while True:
        records, checkpoints = asyncio.run(read_trail(bootstrap, loaded.policy.region))
        report = verify(records, checkpoints, keys)
        if not report.ok or report.counts.event_ids >= events or time.monotonic() > deadline:
            break
        interrupts.check()
        time.sleep(0.5)
    say(f"audit trail: {report.summary()}")
    return report.ok and report.counts.event_ids >= events


def _show_sample(outcomes, bootstrap: str, loaded, mix: list[GeneratedEvent]) -> None:  # noqa: ANN001
    sample = outcomes.samples.get(f"{loaded.policy.region}.cleared.payments")
    if sample is None:
        return
    doc = orjson.loads(sample)
    say("a masked sample from eu.cleared.payments:")
    print(orjson.dumps({k: doc[k] for k in ("payment_id", "card", "subject", "note") if k in doc},
                       option=orjson.OPT_INDENT_2).decode(), flush=True)
    event_id = next(e.event_id for e in mix if e.value and doc.get("payment_id", "").encode() in e.value)
    record = None
    with contextlib.suppress(Exception):
        record = asyncio.run(read_provenance(bootstrap, loaded.policy, event_id))
    if record:
        stage = record["stages"][-1]
        say(f"provenance of {event_id}: {stage['decision']} -> {stage['destination']['topic']}"
            f"[{stage['destination']['partition']}]@{stage['destination']['offset']}, "
            f"masking {[m['strategy'] + ':' + m['path'] for m in stage['masking']]}")
    say("against a running fleet: residency trace EVENT_ID --policy POLICY; "
        "residency audit verify --policy POLICY --public-key PEM")


if __name__ == "__main__":
    sys.exit(run_demo(2000, Path(tempfile.gettempdir()) / "residency"))
