"""CLI for residency enforcement: ``acls``, ``verify-topic`` and ``attest keygen``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from pathlib import Path

from pipeline.policy import load_policy


def cmd_acls(args: argparse.Namespace) -> int:
    from pipeline.acls import UnmappedGroupError, kafka_acls_commands, policy_acls, render_strimzi, strimzi_users

    loaded = load_policy(args.policy)
    try:
        acls = policy_acls(loaded.policy, os.environ.get("RESIDENCY_APP_ID") or None)
    except UnmappedGroupError as exc:
        print(f"{args.policy}: {exc}", file=sys.stderr)
        return 1
    if args.apply:
        from pipeline.aclapply import AclError, apply_acls

        bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        try:
            count = asyncio.run(apply_acls(bootstrap, acls))
        except AclError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{count} ACLs applied to {bootstrap}")
        return 0
    if args.format in ("kafka-acls", "both"):
        print(f"# ACLs for region {loaded.policy.region} (policy {loaded.hash}); "
              f"run with an admin config in KAFKA_ADMIN_CONFIG")
        print("\n".join(kafka_acls_commands(acls)))
    if args.format == "both":
        print("---")
    if args.format in ("strimzi", "both"):
        print(render_strimzi(strimzi_users(acls, args.cluster, args.namespace)), end="")
    return 0


def _trusted(public_keys: list[Path]) -> dict:
    from pipeline.audit import load_public_keys, load_signing_key

    if public_keys:
        return load_public_keys([p.read_text() for p in public_keys])
    secret = os.environ.get("RESIDENCY_ATTESTATION_KEY")
    if not secret:
        raise SystemExit("no trusted attestation key: pass --public-key FILE (or set RESIDENCY_ATTESTATION_KEY)")
    return load_public_keys([load_signing_key(secret).public_key_pem()])


def cmd_verify_topic(args: argparse.Namespace) -> int:
    from pipeline.attestation import VerifiedRoots
    from pipeline.consumer import check
    from pipeline.harness import read_topic

    trusted = _trusted(args.public_key)
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    messages = asyncio.run(read_topic(bootstrap, args.topic))
    counts: Counter[str] = Counter()
    roots = VerifiedRoots()
    for message in messages:
        record = check(message, trusted, args.as_topic, roots)
        counts[record.verdict.status] += 1
        if not record.verdict.ok:
            print(f"{record.verdict.status.upper()} {record.coordinates}")
    bad = sum(n for status, n in counts.items() if status != "ok")
    print(f"{args.topic}: {len(messages)} records, {counts['ok']} attested, {bad} not "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if k != 'ok') or 'none'})")
    return 1 if bad else 0


def cmd_attest(args: argparse.Namespace) -> int:
    from pipeline.audit import generate_signing_key, load_signing_key

    secret = generate_signing_key()
    args.public_out.write_text(load_signing_key(secret).public_key_pem())
    print(f"RESIDENCY_ATTESTATION_KEY={secret}")
    print(f"# public key for consumers and verify-topic: {args.public_out} "
          f"(key id {load_signing_key(secret).key_id})", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("acls", help="the Kafka ACLs that make the topology the only path")
    a.add_argument("--policy", type=Path, required=True)
    a.add_argument("--format", choices=["kafka-acls", "strimzi", "both"], default="both")
    a.add_argument("--cluster", default="my-cluster", help="Strimzi: the Kafka cluster's name (strimzi.io/cluster)")
    a.add_argument("--namespace", help="Strimzi: the KafkaUsers' namespace")
    a.add_argument("--apply", action="store_true", help="create them on the broker (needs a super user connection)")
    a.add_argument("--bootstrap")
    a.set_defaults(func=cmd_acls)

    v = sub.add_parser("verify-topic", help="check the attestation of every record on a cleared or egress topic")
    v.add_argument("topic")
    v.add_argument("--bootstrap")
    v.add_argument("--public-key", type=Path, action="append", default=[], help="trusted attestation key (PEM)")
    v.add_argument("--as-topic", help="verify as if read from this topic (a mirrored copy)")
    v.set_defaults(func=cmd_verify_topic)

    t = sub.add_parser("attest", help="attestation keys")
    t.add_argument("action", choices=["keygen"])
    t.add_argument("--public-out", type=Path, default=Path("attestation-public.pem"))
    t.set_defaults(func=cmd_attest)
