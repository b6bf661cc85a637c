"""Creating topics on the test broker, shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """Create each of ``names`` with ``partitions`` partitions, replication factor 1."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()
