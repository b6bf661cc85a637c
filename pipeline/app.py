"""Build the Faust app for one regional fleet. Topics, tables and agents live in their own modules."""

from __future__ import annotations

import faust

from pipeline.compression import use_level
from pipeline.settings import Settings
from pipeline.topics import app_id

PRODUCER_BATCH_BYTES = 512 * 1024
CONSUMER_FETCH_BYTES = 4 * 1024 * 1024


def create_app(settings: Settings, region: str) -> faust.App:
    """The ``<region>.residency`` app; nothing here binds an event loop or touches the network."""
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    use_level(settings.compression, settings.compression_level)  # aiokafka has no setting for it
    return faust.App(
        settings.app_id or app_id(region),  # the namespace guard refuses one outside the region
        broker=brokers,
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        web_host=settings.web_bind,
        producer_acks=-1,
        # JSON records compress 4-10x; the broker stores and serves the batches as they were sent.
        producer_compression_type=None if settings.compression == "none" else settings.compression,
        # Faust's default 16 KB producer batch holds ~15 of our ~1 KB records: building and framing
        # that many batches per request cost ~10% of a worker's CPU (residency bench, session 4).
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # One R.provenance record holds a screen batch's fragments for one partition (~170 KB at the
        # default batch size). With Faust's 1 MB per-partition fetch the record agent fell up to
        # 15,000 events behind the screen stage under a backlog (residency bench, session 8).
        consumer_max_fetch_size=CONSUMER_FETCH_BYTES,
        topic_disable_leader=True,
        topic_allow_declare=False,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 3),
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=16_384,
        logging_config=None,
    )
