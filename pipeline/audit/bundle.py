"""Evidence bundles: the records that prove a time window, verifiable offline with no broker.

Layout of a bundle directory::

    audit.jsonl        {"offset", "partition", "value": base64 of the exact R.audit record value}
    checkpoints.jsonl  the same, for R.audit.checkpoints records
    public_keys/*.pem  the checkpoint verification keys, named by key id
    MANIFEST.json      format, tool version, topic, window, counts, key ids, SHA-256 of every file

Values are kept as base64 of the exact bytes, so the bundle proves what the broker held, byte for
byte. The manifest is a convenience: an attacker can rewrite it, so the chain and the signed
checkpoints are what prove integrity, and a verifier should pin the public keys it already holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.audit.entry import AuditEntry, EntryError, canonical, format_at, parse_at
from pipeline.audit.external import Record
from pipeline.audit.report import Finding, Report
from pipeline.audit.signing import SigningKeyError, load_public_keys
from pipeline.audit.verify import verify
from pipeline.audit.window import select_window

BUNDLE_FORMAT = "residency.audit.bundle/1"
AUDIT_FILE = "audit.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
KEYS_DIR = "public_keys"
MANIFEST_FILE = "MANIFEST.json"
_FILE_RANK = {AUDIT_FILE: 0, CHECKPOINTS_FILE: 1}


def export_bundle(
    records: Iterable[Record],
    checkpoints: Iterable[Record],
    public_key_pems: Iterable[str],
    out_dir: str | Path,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Write a bundle for ``[since, until]`` into the new or empty ``out_dir``; returns its report.

    A chain that fails verification is still exported (it is evidence); the manifest records the
    verdict at export time.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"bundle directory {out} is not empty")
    (out / KEYS_DIR).mkdir(parents=True, exist_ok=True)
    audit, external = select_window(records, checkpoints, since=since, until=until)
    pems = list(public_key_pems)
    keys = load_public_keys(pems)
    _write_jsonl(out / AUDIT_FILE, audit)
    _write_jsonl(out / CHECKPOINTS_FILE, external)
    for pem in pems:
        (key_id,) = load_public_keys([pem])
        (out / KEYS_DIR / f"{key_id}.pem").write_text(pem)
    report = verify(audit, external, keys, since=since, until=until)
    manifest = _manifest(out, audit, report, sorted(keys))
    (out / MANIFEST_FILE).write_bytes(orjson.dumps(manifest, option=_PRETTY) + b"\n")
    return report


def verify_bundle(
    directory: str | Path, public_keys: Mapping[str, Ed25519PublicKey] | None = None
) -> Report:
    """Verify a bundle offline. Pass the ``public_keys`` you trust; without them the bundle's own
    keys are used, which cannot rule out a bundle rewritten and re-signed with another key."""
    root = Path(directory)
    manifest, findings = _read_manifest(root)
    window = _manifest_window(manifest)
    records, lines, bad = _read_jsonl(root / AUDIT_FILE)
    external, external_lines, external_bad = _read_jsonl(root / CHECKPOINTS_FILE)
    notes: list[str] = []
    if public_keys is None:
        public_keys = _bundle_keys(root, findings)
        notes.append("trusted keys were taken from the bundle itself; pin the keys you hold")
    report = verify(records, external, public_keys, since=window[0], until=window[1])
    located = [_locate(finding, lines, external_lines) for finding in report.errors]
    chain = sorted(located + bad + external_bad, key=_bundle_rank)
    if manifest is not None:
        findings += _check_manifest(root, manifest, report)
    return replace(report, errors=chain + findings, notes=report.notes + notes)


_PRETTY = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


def _write_jsonl(path: Path, records: list[Record]) -> None:
    with path.open("wb") as out:
        for partition, offset, value in records:
            line = {"partition": partition, "offset": offset,
                    "value": base64.b64encode(value).decode("ascii")}
            out.write(canonical(line) + b"\n")


def _bundle_files(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }


def _manifest(root: Path, audit: list[Record], report: Report, key_ids: list[str]) -> dict:
    partitions: dict[str, dict] = {}
    times: list[str] = []
    for partition, offset, value in audit:
        span = partitions.setdefault(str(partition), {"first_offset": offset, "records": 0})
        span["last_offset"] = offset
        span["records"] += 1
        try:
            times.append(AuditEntry.from_bytes(value).at)
        except EntryError:
            pass
    return {
        "format": BUNDLE_FORMAT,
        "tool": {"name": "residency", "version": _tool_version()},
        "topic": report.topic,
        "since": format_at(report.since) if report.since else None,
        "until": format_at(report.until) if report.until else None,
        "time_range": {"first_at": min(times, default=None), "last_at": max(times, default=None)},
        "partitions": partitions,
        "counts": asdict(report.counts),
        "verified_at_export": {"ok": report.ok, "first_error":
                               report.first_error.to_dict() if report.first_error else None},
        "key_ids": key_ids,
        "files": _bundle_files(root),
    }


def _tool_version() -> str:
    try:
        return metadata.version("residency")
    except metadata.PackageNotFoundError:
        return "unknown"


def _read_manifest(root: Path) -> tuple[dict | None, list[Finding]]:
    try:
        manifest = orjson.loads((root / MANIFEST_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        return None, [_manifest_finding("MANIFEST.json is missing, unreadable or of another format")]
    return manifest, []


def _manifest_window(manifest: dict | None) -> tuple[datetime | None, datetime | None]:
    if manifest is None:
        return None, None
    try:
        return tuple(parse_at(manifest[key]) if manifest.get(key) else None
                     for key in ("since", "until"))
    except (TypeError, ValueError):
        return None, None


def _read_jsonl(path: Path) -> tuple[list[Record], dict, list[Finding]]:
    """Records, their line numbers by (partition, offset), and findings for unreadable lines."""
    records: list[Record] = []
    lines: dict[tuple[int, int], int] = {}
    bad: list[Finding] = []
    try:
        text = path.read_bytes().splitlines()
    except OSError:
        return records, lines, [_unreadable(path.name, None, "file is missing")]
    for number, raw in enumerate(text, start=1):
        record = _parse_line(raw)
        if record is None:
            bad.append(_unreadable(path.name, number, "line is not a bundle record"))
            continue
        records.append(record)
        lines.setdefault(record[:2], number)
    return records, lines, bad


def _parse_line(raw: bytes) -> Record | None:
    try:
        line = orjson.loads(raw)
        partition, offset, value = line["partition"], line["offset"], line["value"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not (isinstance(partition, int) and isinstance(offset, int) and isinstance(value, str)):
        return None
    try:
        return partition, offset, base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return partition, offset, b"<not base64>"  # the verifier names it as unparseable


def _bundle_keys(root: Path, findings: list[Finding]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted((root / KEYS_DIR).glob("*.pem")):
        try:
            keys.update(load_public_keys([path.read_bytes()]))
        except SigningKeyError:
            findings.append(_unreadable(f"{KEYS_DIR}/{path.name}", None, "not an Ed25519 PEM key"))
    return keys


def _locate(finding: Finding, lines: dict, external_lines: dict) -> Finding:
    if finding.source == "checkpoints":
        return replace(finding, file=CHECKPOINTS_FILE,
                       line=external_lines.get((finding.source_partition, finding.offset)))
    return replace(finding, file=AUDIT_FILE, line=lines.get((finding.partition, finding.offset)))


def _bundle_rank(finding: Finding) -> tuple:
    line = finding.line if finding.line is not None else 1 << 62
    return (_FILE_RANK.get(finding.file, 2), line, finding.sort_key())


def _check_manifest(root: Path, manifest: dict, report: Report) -> list[Finding]:
    findings = []
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    actual = _bundle_files(root)
    for name in sorted(set(listed) | set(actual)):
        if name not in listed:
            findings.append(_manifest_finding(f"{name} is not listed in the manifest"))
        elif name not in actual:
            findings.append(_manifest_finding(f"{name} is listed in the manifest but missing"))
        elif listed[name] != actual[name]:
            findings.append(_manifest_finding(f"{name} does not match its SHA-256 in the manifest"))
    if report.ok and manifest.get("counts") != asdict(report.counts):
        findings.append(_manifest_finding("manifest counts differ from the verified records"))
    if manifest.get("topic") != report.topic:
        findings.append(_manifest_finding("manifest topic differs from the records' topic"))
    return findings


def _manifest_finding(detail: str) -> Finding:
    return Finding(kind="manifest_mismatch", detail=detail, source="bundle", file=MANIFEST_FILE)


def _unreadable(file: str, line: int | None, detail: str) -> Finding:
    return Finding(kind="unparseable", detail=detail, source="bundle", file=file, line=line)
