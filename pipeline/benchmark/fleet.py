"""The processes a benchmark runs: pass-through baselines and ``residency worker`` fleets, with the
files and settings a worker needs (policy with the run's region, keys, audit key, local identity)."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from pipeline.audit import generate_signing_key
from pipeline.broker import free_port
from pipeline.identity import LocalIssuer
from pipeline.policy import LoadedPolicy, load_policy
from pipeline.runner import WorkerProcess

EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "examples" / "eu-policy.yaml"


def region_policy(run_dir: Path, region: str) -> LoadedPolicy:
    """The example policy, unchanged but for its region (so a shared broker's topics never mix)."""
    text = EXAMPLE_POLICY.read_text()
    if region != "eu":
        text = text.replace("region: eu", f"region: {region}")
    path = run_dir / f"policy-{region}.yaml"
    path.write_text(text)
    return load_policy(path)


class WorkerEnv:
    """Keys, an audit signing key and a local identity provider, shared by the run's workers."""

    def __init__(self, run_dir: Path, extra: dict[str, str] | None = None) -> None:
        keys = run_dir / "keys.json"
        keys.write_text(json.dumps({"pii-hmac-2026": secrets.token_urlsafe(48)}))
        keys.chmod(0o600)
        idp = LocalIssuer.create(run_dir / "idp")
        self.run_dir = run_dir
        self.env = {"RESIDENCY_KEYS_FILE": str(keys), "RESIDENCY_AUDIT_SIGNING_KEY": generate_signing_key(),
                    "RESIDENCY_ATTESTATION_KEY": generate_signing_key(),
                    "RESIDENCY_JWKS": str(idp.jwks_path), "RESIDENCY_JWT_ISSUER": idp.issuer,
                    "RESIDENCY_JWT_AUDIENCE": idp.audience, **(extra or {})}

    def worker(self, loaded: LoadedPolicy, bootstrap: str, name: str,
               env: dict[str, str] | None = None) -> WorkerProcess:
        return WorkerProcess(loaded.path, bootstrap, self.run_dir / name / "data", free_port(),
                             self.run_dir / name / "worker.log", {**self.env, **(env or {})})


class Passthrough(WorkerProcess):
    """One baseline of :mod:`pipeline.benchmark.passthrough` in a child process."""

    def __init__(self, mode: str, bootstrap: str, sources: list[str], sink: str, run_dir: Path,
                 name: str | None = None) -> None:
        name = name or mode  # the process's directory and consumer group (one per round)
        super().__init__(EXAMPLE_POLICY, bootstrap, run_dir / name / "data", 0, run_dir / name / "process.log")
        self.command = [sys.executable, "-m", "pipeline.benchmark.passthrough", mode, "--bootstrap", bootstrap,
                        "--group", f"{run_dir.name}-{name}", "--source", ",".join(sources), "--sink", sink,
                        "--data-dir", str(self.data_dir)]
