"""CLI functions for held events and approver identity: ``held list|show``, ``approve``, ``reject``, ``idp``.

The held-event commands talk to any worker's HTTP API (``--url`` or ``RESIDENCY_URL``); the worker
routes per-event calls to the owner of the event's partition. Tokens come from ``--token`` or
``RESIDENCY_TOKEN`` and are never printed. A refusal exits non-zero and prints its reason code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:6066"
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4


def cmd_idp_init(args: argparse.Namespace) -> int:
    from pipeline.identity import LocalIssuer

    issuer = LocalIssuer.create(args.dir, issuer=args.issuer, audience=args.audience)
    print(f"local issuer in {issuer.dir} (key id {issuer.kid})")
    print(f"RESIDENCY_JWKS={issuer.jwks_path.resolve()}")
    print(f"RESIDENCY_JWT_ISSUER={issuer.issuer}")
    print(f"RESIDENCY_JWT_AUDIENCE={issuer.audience}")
    return 0


def cmd_idp_token(args: argparse.Namespace) -> int:
    from pipeline.identity import IdentityError, LocalIssuer

    try:
        issuer = LocalIssuer(args.dir)
    except IdentityError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    groups = [g.strip() for g in ",".join(args.groups or []).split(",") if g.strip()]
    not_before = int(time.time()) + args.not_before if args.not_before is not None else None
    print(issuer.mint(args.sub, groups, ttl_s=args.ttl, audience=args.audience, issuer=args.issuer,
                      not_before=not_before))
    return 0


def _url(args: argparse.Namespace) -> str:
    return (args.url or os.environ.get("RESIDENCY_URL") or DEFAULT_URL).rstrip("/")


def _token(args: argparse.Namespace) -> str | None:
    return args.token or os.environ.get("RESIDENCY_TOKEN") or None


def call(method: str, url: str, token: str | None = None, body: dict[str, Any] | None = None,
         timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """One JSON call to a worker: ``(status, body)``; ``status`` 0 when no worker answered."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own worker
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"error": "http_error", "message": f"HTTP {exc.code}"}
    except (OSError, ValueError) as exc:
        return 0, {"error": "unreachable", "message": f"no worker answered at {url} ({type(exc).__name__})"}


def _fail(status: int, body: dict[str, Any]) -> int:
    code = body.get("error") or body.get("reason") or "error"
    print(f"refused: {code}: {body.get('message', '')}".rstrip(": "), file=sys.stderr)
    if status == 0:
        return EXIT_UNREACHABLE
    return EXIT_REFUSED if 400 <= status < 500 else 1


def _age(ms: int | None) -> str:
    if not ms:
        return "?"
    seconds = max(0, int(time.time() - ms / 1000))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _preview(preview: Any, width: int = 60) -> str:
    text = json.dumps(preview, separators=(",", ":"), ensure_ascii=False) if preview is not None else "-"
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_held_list(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (("status", args.status), ("dataset", args.dataset)) if v})
    status, body = call("GET", f"{_url(args)}/held/" + (f"?{query}" if query else ""), _token(args))
    if status != 200:
        return _fail(status, body)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    items = body.get("held", [])
    print(f"{'EVENT ID':<40} {'DATASET':<10} {'STATUS':<9} {'AGE':>7} {'APPR':>4}  {'REASON':<26} PREVIEW")
    for item in items:
        approvals = f"{item.get('approvals', 0)}/{item.get('required_approvals', '?')}"
        print(f"{item['event_id']:<40} {item['dataset']:<10} {item['status']:<9} {_age(item.get('held_at_ms')):>7} "
              f"{approvals:>4}  {item['reason']:<26} {_preview(item.get('preview'))}")
    print(f"{len(items)} held event(s)" + ("" if body.get("complete", True) else
                                          f"; workers not answering: {', '.join(body.get('missing', []))}"))
    return 0


def cmd_held_show(args: argparse.Namespace) -> int:
    status, body = call("GET", f"{_url(args)}/held/{urllib.parse.quote(args.event_id, safe='')}/", _token(args))
    if status != 200:
        return _fail(status, body)
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    """``approve`` / ``reject``: fetch the hold to bind the decision to its bytes, then post it."""
    token = _token(args)
    if not token:
        print("refused: unauthenticated: no token (use --token or RESIDENCY_TOKEN)", file=sys.stderr)
        return EXIT_REFUSED
    base = f"{_url(args)}/held/{urllib.parse.quote(args.event_id, safe='')}"
    payload: dict[str, Any] = {"justification": args.reason or ""}
    if args.payload_sha256 and args.policy_hash:
        payload.update(payload_sha256=args.payload_sha256, policy_hash=args.policy_hash)
    else:
        status, held = call("GET", f"{base}/", token)
        if status != 200:
            return _fail(status, held)
        payload.update(payload_sha256=args.payload_sha256 or held.get("raw_sha256"),
                       policy_hash=args.policy_hash or held.get("policy_hash"))
    if args.decision_id:
        payload["decision_id"] = args.decision_id
    status, body = call("POST", f"{base}/{args.action}", token, payload, timeout=args.timeout + 5)
    if status not in (200, 202):
        return _fail(status, body)
    print(f"{args.action}: {args.event_id}: {body.get('status', 'accepted')}"
          + (f" -> {body['destination']}" if body.get("destination") else "")
          + (f" ({body['message']})" if body.get("message") else ""))
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``held``, ``approve``, ``reject`` and ``idp`` on the CLI's subparsers."""
    def client(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help=f"a worker's web address (default: RESIDENCY_URL or {DEFAULT_URL})")
        p.add_argument("--token", help="your identity token (default: RESIDENCY_TOKEN)")

    held = sub.add_parser("held", help="the inbox of held events").add_subparsers(dest="action", required=True)
    hl = held.add_parser("list", help="held events: id, dataset, reason, age, masked preview")
    hl.add_argument("--status", help="only this status (held, released, rejected, expired); default held")
    hl.add_argument("--dataset")
    hl.add_argument("--json", action="store_true")
    client(hl)
    hl.set_defaults(func=cmd_held_list)
    hs = held.add_parser("show", help="one held event (masked preview, approvals, refusals)")
    hs.add_argument("event_id")
    client(hs)
    hs.set_defaults(func=cmd_held_show)
    for action in ("approve", "reject"):
        p = sub.add_parser(action, help=f"{action} a held event")
        p.add_argument("event_id")
        p.add_argument("--reason", "--justification", dest="reason", help="the justification (recorded)")
        p.add_argument("--payload-sha256", help="bind to these bytes (default: the held record's hash)")
        p.add_argument("--policy-hash", help="bind to this policy (default: the held record's)")
        p.add_argument("--decision-id", help="the decision's unique id (default: a new one)")
        p.add_argument("--timeout", type=float, default=30, help="seconds to wait for the decision to apply")
        client(p)
        p.set_defaults(func=cmd_decide, action=action)

    idp = sub.add_parser("idp", help="a local identity provider for demos and tests")
    isub = idp.add_subparsers(dest="action", required=True)
    ii = isub.add_parser("init", help="generate a signing key and its JWKS in DIR")
    ii.add_argument("--dir", type=Path, required=True)
    ii.add_argument("--issuer", default="residency-local-idp")
    ii.add_argument("--audience", default="residency-approvals")
    ii.set_defaults(func=cmd_idp_init)
    it = isub.add_parser("token", help="mint a token for a test user (printed to stdout)")
    it.add_argument("--dir", type=Path, required=True)
    it.add_argument("--sub", required=True)
    it.add_argument("--groups", action="append", help="comma-separated; may repeat")
    it.add_argument("--ttl", type=int, default=3600, help="seconds; negative mints an expired token")
    it.add_argument("--not-before", type=int, help="seconds from now before the token is valid")
    it.add_argument("--issuer", help="override the issuer (tests)")
    it.add_argument("--audience", help="override the audience (tests)")
    it.set_defaults(func=cmd_idp_token)


def demo_walkthrough(url: str, idp_dir: Path, say: Any, wait_s: float = 60) -> bool:
    """The demo's last step: list the inbox, approve one hold and reject another through this CLI."""
    import subprocess

    from pipeline.identity import LocalIssuer

    deadline = time.monotonic() + wait_s
    held: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(held) < 2:
        held = call("GET", f"{url}/held/")[1].get("held", [])
        time.sleep(0.5)
    if len(held) < 2:
        say("approvals: fewer than two held events to decide on")
        return False
    token = LocalIssuer(idp_dir).mint("demo-approver", ["payments-approvers", "support-leads"], ttl_s=3600)
    env = {**os.environ, "RESIDENCY_URL": url, "RESIDENCY_TOKEN": token}

    def cli(*args: str) -> subprocess.CompletedProcess:
        say("$ residency " + " ".join(args))
        result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                                env=env, timeout=60)
        out = (result.stdout + result.stderr).strip().splitlines()
        print("\n".join(out[:8] + ([f"... ({len(out) - 8} more lines)"] if len(out) > 8 else [])), flush=True)
        return result

    cli("held", "list")
    first, second = held[0]["event_id"], held[1]["event_id"]
    approved = cli("approve", first, "--reason", "demo: verified with the account owner").returncode == 0
    rejected = cli("reject", second, "--reason", "demo: could not verify the request").returncode == 0
    return approved and rejected
