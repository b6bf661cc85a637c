"""``residency audit keygen|verify|export``: the auditor's side of the audit trail."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

from pipeline.audit import export_bundle, generate_signing_key, load_public_keys, load_signing_key, verify, verify_bundle
from pipeline.audit.report import Report
from pipeline.harness import end_offsets, read_topic
from pipeline.topics import RegionTopics


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 / ISO 8601; a bare date means midnight UTC."""
    if text is None:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise SystemExit(f"time {text!r} needs a timezone, e.g. {text}Z")
    return value


def cmd_keygen(public_out: Path) -> int:
    secret = generate_signing_key()
    public_out.write_text(load_signing_key(secret).public_key_pem())
    print(f"# public key written to {public_out}; keep the line below secret (a Secret, not a file in git)")
    print(f"RESIDENCY_AUDIT_SIGNING_KEY={secret}")
    return 0


def trusted_keys(public_key_files: list[Path], signing_key: object | None) -> dict:
    pems = [p.read_text() for p in public_key_files]
    if not pems and signing_key is not None:
        pems = [load_signing_key(signing_key).public_key_pem()]
    if not pems:
        raise SystemExit("no trusted public key: pass --public-key FILE (or set RESIDENCY_AUDIT_SIGNING_KEY)")
    return load_public_keys(pems)


async def read_trail(bootstrap: str, region: str) -> tuple[list, list]:
    """``R.audit`` and the checkpoint copies in ``R.audit.checkpoints``, as they stood together.

    A checkpoint is copied only once its ``R.audit`` entry is acknowledged, so the copies' end
    offsets are read first and ``R.audit`` after them: every copy read then has its entry in what
    was read of ``R.audit``. Read the other way round, a live fleet's newest checkpoint could be
    copied in between, and its entry, past the end read, looked removed ("truncated")."""
    names = RegionTopics(region)
    copies_end = await end_offsets(bootstrap, names.audit_checkpoints)
    records = await read_topic(bootstrap, names.audit)
    checkpoints = await read_topic(bootstrap, names.audit_checkpoints, until=copies_end)
    as_tuples = lambda msgs: [(m.partition, m.offset, m.value) for m in msgs]  # noqa: E731
    return as_tuples(records), as_tuples(checkpoints)


def report_exit(report: Report) -> int:
    print(report.summary())
    return 0 if report.ok else 1


def cmd_verify(bootstrap: str, region: str, keys: dict, since: datetime | None, until: datetime | None) -> int:
    records, checkpoints = asyncio.run(read_trail(bootstrap, region))
    return report_exit(verify(records, checkpoints, keys, since=since, until=until))


def cmd_verify_bundle(directory: Path, keys: dict | None) -> int:
    return report_exit(verify_bundle(directory, keys))


def cmd_export(bootstrap: str, region: str, public_pems: list[str], out: Path,
               since: datetime | None, until: datetime | None) -> int:
    records, checkpoints = asyncio.run(read_trail(bootstrap, region))
    report = export_bundle(records, checkpoints, public_pems, out, since=since, until=until)
    print(f"bundle written to {out}", file=sys.stderr)
    return report_exit(report)
