"""Every start-up guard of issue 7 refuses to start with a message that says what to fix.

The workers run as real processes against the session broker, all at once (each refuses in seconds).
The rack guard needs a broker with a rack: see test_acls.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.admin import apply_topics
from pipeline.broker import free_port
from pipeline.policy import load_policy
from pipeline.topics import topic_specs
from tests.conftest import REPO

pytestmark = pytest.mark.integration
BASE = """
version: 1
region: grd
egress_regions: [us]
datasets:
  payments:
    partitions: 1
    producers: {principals: [svc-payments]}
"""
PROFILE_OUTSIDE = BASE + """    egress:
      us-analytics: {region: us, topic: us.analytics.payments}
"""


def _start(policy: Path, bootstrap: str, data: Path, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline.cli", "worker", "--policy", str(policy), "--bootstrap", bootstrap,
               "--web-port", str(free_port()), "--data-dir", str(data)]
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RESIDENCY_")}
    return subprocess.Popen(command, cwd=REPO, env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_when_each_guard_is_misconfigured_then_the_worker_refuses_and_says_what_to_fix(
        kafka_bootstrap, tmp_path, keys_file, audit_signing_key, attestation_key, local_idp):
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    outside = tmp_path / "outside.yaml"
    outside.write_text(PROFILE_OUTSIDE)
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(load_policy(base).policy))).ok
    ok = {"RESIDENCY_KEYS_FILE": str(keys_file), "RESIDENCY_AUDIT_SIGNING_KEY": audit_signing_key,
          "RESIDENCY_ATTESTATION_KEY": attestation_key, "RESIDENCY_PRODUCER_JWKS": str(local_idp.jwks_path),
          "RESIDENCY_PRODUCER_JWT_ISSUER": local_idp.issuer, "RESIDENCY_PRODUCER_JWT_AUDIENCE": local_idp.audience}
    without = lambda *names: {k: v for k, v in ok.items() if k not in names}  # noqa: E731
    cases = {
        "region": (base, {**ok, "RESIDENCY_REGION": "us"},
                   "the policy is for region 'grd' but this fleet is configured for 'us'"),
        "profile-topic": (outside, ok, "topic us.analytics.payments is outside the region's namespace"),
        "changelog": (base, {**ok, "RESIDENCY_APP_ID": "residency-grd"},
                      "topic residency-grd-provenance-changelog is outside the region's namespace"),
        "attestation": (base, without("RESIDENCY_ATTESTATION_KEY"), "no attestation key: set RESIDENCY_ATTESTATION_KEY"),
        "producer-identity": (base, without("RESIDENCY_PRODUCER_JWT_AUDIENCE"),
                              "producer identity is not configured: set RESIDENCY_PRODUCER_JWT_AUDIENCE"),
        "service-account": (tmp_path / "sa.yaml", ok, "service account keys ['pos-2026'] have no secret"),
    }
    (tmp_path / "sa.yaml").write_text(BASE.replace("datasets:", "service_accounts: [{key: pos-2026, subject: pos}]\n"
                                                                "datasets:"))
    procs = {name: _start(policy, kafka_bootstrap, tmp_path / name, env) for name, (policy, env, _) in cases.items()}
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, stderr[-2000:])
        assert "refusing to start" in stderr and cases[name][2] in stderr, (name, stderr[-2000:])
