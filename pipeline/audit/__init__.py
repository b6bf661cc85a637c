"""The tamper-evident audit trail: a pure library that the record agent and the CLI call.

- :mod:`~pipeline.audit.entry`: the record format and its canonical bytes.
- :mod:`~pipeline.audit.chain`: :class:`ChainWriter`, one per owned partition of ``R.audit``.
- :mod:`~pipeline.audit.signing` and :mod:`~pipeline.audit.checkpoint`: Ed25519 checkpoints.
- :mod:`~pipeline.audit.verify`: :func:`verify`, naming the first bad record.
- :mod:`~pipeline.audit.bundle`: offline evidence bundles.

See ``docs/audit.md`` for the format, the guarantees and their limits.
"""

from pipeline.audit.bundle import export_bundle, verify_bundle
from pipeline.audit.chain import ChainResumeError, ChainWriter
from pipeline.audit.entry import AuditEntry, canonical, genesis_hash
from pipeline.audit.report import Counts, Finding, Report
from pipeline.audit.signing import (
    Signer,
    SigningKeyError,
    generate_signing_key,
    load_public_keys,
    load_signing_key,
)
from pipeline.audit.verify import verify
from pipeline.audit.window import select_window

__all__ = [
    "AuditEntry", "ChainResumeError", "ChainWriter", "Counts", "Finding", "Report", "Signer",
    "SigningKeyError", "canonical", "export_bundle", "generate_signing_key", "genesis_hash",
    "load_public_keys", "load_signing_key", "select_window", "verify", "verify_bundle",
]
