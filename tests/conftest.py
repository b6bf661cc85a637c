"""Shared fixtures: one session broker, and factories for policies, keys and worker processes."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.keys import KeyRing
from pipeline.policy import LoadedPolicy, load_policy
from tests.policies import EXAMPLE_POLICY, example_policy_text  # noqa: F401 - unit tests import EXAMPLE_POLICY from here
from tests.waiting import wait_for  # noqa: F401 - the tests import it from here

REPO = Path(__file__).resolve().parents[1]
TEST_SECRET = "test-secret-that-is-long-enough-for-hkdf-0123456789"


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing({"pii-hmac-2026": TEST_SECRET.encode()})


@pytest.fixture
def policy_factory(tmp_path: Path) -> Callable[..., LoadedPolicy]:
    """Write the example policy with a given region (and text edits) to a file, and load it."""
    counter = iter(range(10_000))

    def make(region: str = "eu", replace: dict[str, str] | None = None) -> LoadedPolicy:
        text = example_policy_text(region, replace)
        path = tmp_path / f"policy-{next(counter)}-{region}.yaml"
        path.write_text(text)
        return load_policy(path)

    return make


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"pii-hmac-2026": secrets.token_urlsafe(48)}))
    return path


@pytest.fixture(scope="session")
def audit_signing_key() -> str:
    from pipeline.audit import generate_signing_key

    return generate_signing_key()


@pytest.fixture(scope="session")
def attestation_key() -> str:
    """The Ed25519 key every test worker attests cleared and egress records with."""
    from pipeline.audit import generate_signing_key

    return generate_signing_key()


@pytest.fixture(scope="session")
def local_idp(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - pipeline.identity.LocalIssuer
    """A local identity provider whose JWKS every test worker trusts for approver tokens."""
    from pipeline.identity import LocalIssuer

    return LocalIssuer.create(tmp_path_factory.mktemp("idp"))


def idp_env(issuer) -> dict[str, str]:  # noqa: ANN001
    return {"RESIDENCY_JWKS": str(issuer.jwks_path), "RESIDENCY_JWT_ISSUER": issuer.issuer,
            "RESIDENCY_JWT_AUDIENCE": issuer.audience}


@pytest.fixture
def worker_factory(kafka_bootstrap: str, keys_file: Path, audit_signing_key: str, local_idp,  # noqa: ANN001
                   tmp_path: Path, attestation_key: str) -> Iterator[Callable[..., object]]:
    """Start real worker processes (stopped at teardown); each gets its own data dir and web port.

    ``bootstrap`` points a worker at another cluster than the session broker."""
    from pipeline.broker import free_port
    from pipeline.runner import WorkerProcess

    started: list[WorkerProcess] = []

    def make(loaded: LoadedPolicy, name: str = "w1", env: dict[str, str] | None = None,
             bootstrap: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(
            loaded.path, bootstrap or kafka_bootstrap, tmp_path / name / "data", free_port(), tmp_path / name / "worker.log",
            {"RESIDENCY_KEYS_FILE": str(keys_file), "RESIDENCY_AUDIT_SIGNING_KEY": audit_signing_key,
             "RESIDENCY_ATTESTATION_KEY": attestation_key, **idp_env(local_idp), **(env or {})},
        )
        started.append(worker.start())
        return worker

    yield make
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One broker for the session: KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else local Kafka."""
    from pipeline.broker import free_ports, resolve_bootstrap

    port, controller = free_ports(2)
    choice = resolve_bootstrap(os.environ, tmp_path_factory.mktemp("kafka"), port=port,
                               controller_port=controller)
    try:
        yield choice.bootstrap
    finally:
        choice.stop()
