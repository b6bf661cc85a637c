"""Fixtures of the fault suite: a fleet per test (fresh region, own data dirs) and the run's seed."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.scenarios import Fleet, fleet_env, fresh_region, say, write_policy


@pytest.fixture(scope="session")
def fault_seed() -> int:
    """``RESIDENCY_FAULT_SEED`` replays a run; otherwise a new seed, printed so a failure can be replayed."""
    seed = int(os.environ.get("RESIDENCY_FAULT_SEED") or random.SystemRandom().randrange(1, 2**31))
    say(f"fault suite seed {seed} (replay with RESIDENCY_FAULT_SEED={seed})")
    return seed


@pytest.fixture
def fleet_factory(kafka_bootstrap: str, audit_signing_key: str, local_idp, tmp_path: Path  # noqa: ANN001
                  ) -> Iterator[Callable[..., Fleet]]:
    fleets: list[Fleet] = []

    def make(prefix: str, replace: dict[str, str] | None = None, bootstrap: str | None = None) -> Fleet:
        root = tmp_path / f"fleet-{len(fleets)}"
        loaded = write_policy(root, fresh_region(prefix), replace)
        fleet = Fleet(bootstrap or kafka_bootstrap, loaded, root, fleet_env(root, audit_signing_key, local_idp))
        fleet.provision()
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop_all()
