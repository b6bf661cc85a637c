"""Runtime settings: one :class:`Settings`, built once at start-up and passed in.

Values come from the environment (``RESIDENCY_*``; ``KAFKA_BOOTSTRAP_SERVERS`` for the broker) or
from keyword arguments. Secrets are ``SecretStr`` and have no defaults: a key the policy names but
settings lack stops the worker at start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.compression import level_problem
from pipeline.keys import KeyRing


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RESIDENCY_", extra="ignore", populate_by_name=True)

    policy: Path | None = None
    region: str | None = Field(
        default=None, description="the fleet's region; the worker refuses a policy for another one"
    )
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "RESIDENCY_BOOTSTRAP_SERVERS"),
    )
    data_dir: Path = Path(".residency/data")
    web_bind: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    keys: dict[str, SecretStr] = Field(default_factory=dict)
    keys_file: Path | None = None
    audit_signing_key: SecretStr | None = Field(
        default=None, description="Ed25519 private key (PEM or base64 seed) that signs audit checkpoints"
    )
    audit_checkpoint_entries: int = Field(default=1000, ge=1)
    audit_checkpoint_seconds: float = Field(default=10.0, gt=0)
    audit_verify_interval_s: float = Field(
        default=5.0, gt=0, le=3600,
        description="how often each worker verifies the tail of the audit chain partitions it owns (small "
                    "runs often: a 30 s run's burst doubled the ingress-to-cleared p99 in residency bench)")
    audit_verify_max_records: int = Field(
        default=10_000, ge=100, le=1_000_000,
        description="records read per partition per verification run at most (older ones are skipped)")
    audit_trusted_keys_file: Path | None = Field(
        default=None, description="PEM public keys trusted for audit checkpoints besides the worker's own "
                                  "(the previous key during a rotation)")
    batch_size: int = Field(
        default=500, ge=1, le=100_000,
        description="raw records screened per batch at most (a backlog fills it; a worker that keeps up "
                    "screens what has arrived). 1000 moved about as many events/s as 500 once the record agent "
                    "kept up, 2000 up to 10% more, but both took the worker's peak RSS to 380-480 MB against "
                    "340-360 at 500 (docs/benchmarks.md, session 8)")
    record_batch_messages: int = Field(
        default=4, ge=1, le=10_000,
        description="R.provenance records per record-agent batch at most; each holds the fragments of one "
                    "screen batch for one partition (about batch_size / audit_partitions fragments). With 1, "
                    "the record agent fell behind the screen stage under a backlog (docs/benchmarks.md, session 8)")
    screen_processes: int = Field(
        default=1, ge=0, le=16,
        description="helper processes that screen part of each batch beside the worker's thread (0: the worker "
                    "screens alone); one uses the second core of a 2-core machine (docs/benchmarks.md, session 7)")
    batch_within_s: float = Field(default=0.05, gt=0, le=10)
    compression: Literal["zstd", "lz4", "snappy", "gzip", "none"] = Field(
        default="zstd",
        description="how the worker's producer compresses what it sends (cleared, held, rejected, provenance, "
                    "the provenance table's changelog, audit). With zstd the broker wrote 7.8x fewer bytes per event "
                    "than with none (docs/benchmarks.md, session 16); Kafka clients from 2.1 on read every codec")
    compression_level: int | None = Field(
        default=None,
        description="the level of RESIDENCY_COMPRESSION (zstd -131072 to 22, lz4 1 to 17, gzip 1 to 9); unset: "
                    "zstd 1, lz4 9, gzip 6. On the worker's outputs zstd 1 compressed better than 3 (Kafka's "
                    "default) in 44% less CPU (docs/benchmarks.md, session 17)")
    session_timeout_s: float = Field(
        default=10.0, ge=6, le=300, description="a worker silent this long leaves the group; its partitions move"
    )
    rebalance_timeout_s: float = Field(default=20.0, ge=6, le=600)
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    jwks: str | None = Field(default=None, description="approver tokens: JWKS file path or https URL")
    jwt_issuer: str | None = Field(default=None, description="approver tokens: the trusted issuer (iss)")
    jwt_audience: str | None = Field(default=None, description="approver tokens: this fleet's audience (aud)")
    jwt_leeway_s: float = Field(default=30.0, ge=0, le=300)
    producer_jwks: str | None = Field(default=None, description="producer tokens: JWKS file path or https URL")
    producer_jwt_issuer: str | None = Field(default=None, description="producer tokens: the trusted issuer")
    producer_jwt_audience: str | None = Field(default=None, description="producer tokens: this fleet's audience")
    producer_jwks_refresh_s: float = Field(default=300.0, ge=5, le=86_400,
                                           description="how often the producer JWKS is fetched again")
    producer_keys: dict[str, SecretStr] = Field(default_factory=dict,
                                                description="service account HMAC secrets by key id")
    producer_keys_file: Path | None = None
    attestation_key: SecretStr | None = Field(
        default=None, description="Ed25519 private key (PEM or base64 seed) that attests cleared and egress records")
    app_id: str | None = Field(default=None, description="the Faust app id; default <region>.residency")
    expiry_check_s: float = Field(default=5.0, gt=0, le=3600, description="how often each worker looks for expired holds")
    enable_test_hooks: bool = Field(default=False, description="test only: honour test_faults (never in production)")
    test_faults: str | None = Field(default=None, description="test only: faults to inject, see pipeline/faults.py")

    @model_validator(mode="after")
    def _level_fits_the_codec(self) -> Settings:
        if self.compression_level is not None:
            problem = level_problem(self.compression, self.compression_level)
            if problem:
                raise ValueError(f"compression_level: {problem}")
        return self

    @field_validator("keys", "producer_keys", mode="before")
    @classmethod
    def _keys_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("RESIDENCY_KEYS and RESIDENCY_PRODUCER_KEYS must be JSON objects of key id to secret") from None
        return value

    def key_ring(self) -> KeyRing:
        """The masking keys from ``keys`` and ``keys_file`` (a JSON object of key id to secret)."""
        secrets = {k: v.get_secret_value().encode() for k, v in self.keys.items()}
        if self.keys_file is not None:
            try:
                data = json.loads(self.keys_file.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"{self.keys_file}: cannot read the keys file ({type(exc).__name__})") from None
            if not isinstance(data, dict):
                raise ValueError(f"{self.keys_file}: expected a JSON object of key id to secret")
            secrets.update({str(k): str(v).encode() for k, v in data.items()})
        return KeyRing(secrets)

    def producer_secrets(self) -> dict[str, bytes]:
        """Service account HMAC secrets from ``producer_keys`` and ``producer_keys_file``."""
        secrets = {k: v.get_secret_value().encode() for k, v in self.producer_keys.items()}
        if self.producer_keys_file is not None:
            try:
                data = json.loads(self.producer_keys_file.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"{self.producer_keys_file}: cannot read the producer keys file "
                                 f"({type(exc).__name__})") from None
            if not isinstance(data, dict):
                raise ValueError(f"{self.producer_keys_file}: expected a JSON object of key id to secret")
            secrets.update({str(k): str(v).encode() for k, v in data.items()})
        return secrets
