"""Throwaway secrets for the local Compose stack, kept in a named volume, never in git.

Writes ``keys.json`` (a random 48-byte secret for every key id the policy names),
``audit-signing.key`` and ``attestation.key`` (fresh Ed25519 seeds) and ``idp/`` (a local identity
provider whose ``jwks.json`` the worker trusts for approver tokens) into OUT. Idempotent: existing secrets are kept, so
hashed values stay joinable across restarts; a key id the policy gained is added.
Production secrets come from a secret store instead (deploy/k8s/base/secrets.yaml).

    python dev-secrets.py --policy /etc/residency/policy.yaml --out /run/residency
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

from pipeline.audit import generate_signing_key
from pipeline.identity import LocalIssuer
from pipeline.policy import PolicyError, load_policy

KEYS_FILE = "keys.json"
SIGNING_KEY_FILE = "audit-signing.key"
ATTESTATION_KEY_FILE = "attestation.key"
IDP_DIR = "idp"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def write_dev_secrets(policy: Path, out: Path) -> list[str]:
    """Create what is missing in ``out``; return the names of what was written."""
    key_ids = [key.id for key in load_policy(policy).policy.keys]
    written: list[str] = []
    keys_path = out / KEYS_FILE
    keys = json.loads(keys_path.read_text()) if keys_path.exists() else {}
    missing = [key_id for key_id in key_ids if key_id not in keys]
    if missing:
        keys.update({key_id: secrets.token_urlsafe(48) for key_id in missing})
        _write_private(keys_path, json.dumps(keys, indent=2) + "\n")
        written += [f"{KEYS_FILE}:{key_id}" for key_id in missing]
    for name in (SIGNING_KEY_FILE, ATTESTATION_KEY_FILE):
        if not (out / name).exists():
            _write_private(out / name, generate_signing_key() + "\n")
            written.append(name)
    if not (out / IDP_DIR / "jwks.json").exists():
        LocalIssuer.create(out / IDP_DIR)  # `residency idp token --dir /run/residency/idp ...` mints tokens
        written.append(IDP_DIR)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        written = write_dev_secrets(args.policy, args.out)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"wrote {', '.join(written)}" if written else "secrets already present; kept them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
