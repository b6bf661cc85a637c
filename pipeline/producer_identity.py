"""Producer identity per record: a JWT in a header, or an HMAC-SHA256 signature by a service account.

Pure given the key material loaded at start-up: tokens are checked against an in-memory JWKS
snapshot (a file or URL is read at start and refreshed in the background, never per record), and
service account secrets come from settings. No reason ever quotes a token, a signature or the payload.

Both proofs are bound to one record through :func:`record_binding` (topic, event id, key, value): a
service account signs it with HMAC-SHA256, a token carries its SHA-256 in the ``record_sha256``
claim. A token or signature copied onto another record (other payload, event id or topic) fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from pipeline.identity import IdentityError, JwtVerifier, Principal
from schemas.decision import RawRecord
from schemas.policy import Policy

log = logging.getLogger(__name__)
IDENTITY_HEADER = "residency-identity"  # a compact JWT (no "Bearer " prefix needed; one is tolerated)
KEY_ID_HEADER = "residency-key-id"  # the service account's key id
SIGNATURE_HEADER = "residency-signature"  # hex of HMAC-SHA256 over record_binding()
RECORD_CLAIM = "record_sha256"  # a producer token's binding: hex SHA-256 of record_binding()
MAX_SIGNATURE_CHARS = 128


class IdentityRefused(Exception):
    """The record's producer is missing, unverifiable or not allowed; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def record_binding(topic: str, key: bytes | None, value: bytes | None, event_id: str) -> bytes:
    """What ties a producer's proof to one record: the topic, the event id and the SHA-256 of key and
    value (hex), one per line after a version line.

    Hashing key and value keeps it easy to build in a shell or any client (docs/producers.md). The
    topic is in it so a record copied into another dataset's raw topic does not verify there either.
    A missing key and an empty key bind alike.
    """
    return b"\n".join([b"residency-record-v1", topic.encode(), event_id.encode(),
                       hashlib.sha256(key or b"").hexdigest().encode(), hashlib.sha256(value or b"").hexdigest().encode()])


def record_digest(topic: str, key: bytes | None, value: bytes | None, event_id: str) -> str:
    """The ``record_sha256`` claim a producer token must carry for this record (hex)."""
    return hashlib.sha256(record_binding(topic, key, value, event_id)).hexdigest()


def sign_record(secret: bytes, topic: str, key: bytes | None, value: bytes | None, event_id: str) -> str:
    """The ``residency-signature`` header value (hex) for a record."""
    return hmac.new(secret, record_binding(topic, key, value, event_id), hashlib.sha256).hexdigest()


class KeySnapshot:
    """JWKS keys by key id, in memory: ``get`` never touches the disk or the network."""

    def __init__(self, keys: dict[str | None, jwt.PyJWK] | None = None) -> None:
        self._keys = keys or {}
        self._lock = threading.Lock()

    def replace(self, keys: dict[str | None, jwt.PyJWK]) -> None:
        with self._lock:
            self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, kid: str | None) -> jwt.PyJWK:
        keys = self._keys
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        key = keys.get(kid)
        if key is None:
            raise IdentityError("unknown_key", "the token's signing key id is not in the JWKS; signature unverifiable")
        return key


def read_jwks(source: str, timeout_s: float = 10.0) -> dict[str | None, jwt.PyJWK]:
    """The keys of a JWKS file or URL; ``ValueError`` names the source, never key material."""
    try:
        if source.startswith(("https://", "http://")):
            with urllib.request.urlopen(source, timeout=timeout_s) as response:  # noqa: S310 - configured URL
                text = response.read(1_048_576).decode()
        else:
            text = Path(source).read_text()
        keyset = jwt.PyJWKSet.from_json(text)
    except (OSError, ValueError, jwt.PyJWKSetError) as exc:
        raise ValueError(f"RESIDENCY_PRODUCER_JWKS: cannot load {source} ({type(exc).__name__})") from None
    return {k.key_id: k for k in keyset.keys}


async def refresh_jwks(snapshot: KeySnapshot, source: str, interval_s: float) -> None:
    """Background task: fetch the JWKS again every ``interval_s``; on failure keep the keys we have."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        try:
            snapshot.replace(await loop.run_in_executor(None, read_jwks, source))
        except ValueError as exc:
            log.warning("producer JWKS refresh failed; keeping the previous keys (%s)", exc)


@dataclass(frozen=True)
class ProducerCheck:
    """Everything needed to identify a record's producer, loaded once at start-up."""

    verifier: JwtVerifier | None = None
    accounts: dict[str, tuple[bytes, Principal]] = field(default_factory=dict)  # key id -> secret, principal
    snapshot: KeySnapshot | None = None
    jwks_source: str | None = None

    def identify(self, record: RawRecord, event_id: str) -> Principal:
        """The verified producer of ``record``, or :class:`IdentityRefused`."""
        token = _header(record, IDENTITY_HEADER)
        key_id = _header(record, KEY_ID_HEADER)
        signature = _header(record, SIGNATURE_HEADER)
        if token is not None and (key_id is not None or signature is not None):
            raise IdentityRefused("identity_invalid:malformed", "both a token and a signature: send one")
        if token is not None:
            return self._token(token, record, event_id)
        if key_id is not None or signature is not None:
            return self._signature(record, event_id, key_id, signature)
        raise IdentityRefused("identity_missing", f"no {IDENTITY_HEADER} token and no {SIGNATURE_HEADER} header")

    def _token(self, token: bytes, record: RawRecord, event_id: str) -> Principal:
        if self.verifier is None:
            raise IdentityRefused("identity_invalid:unknown_key", "producer tokens are not accepted by this fleet")
        text = token.decode("ascii", errors="replace").strip()
        text = text[7:].strip() if text[:7].lower() == "bearer " else text
        try:
            principal, claims = self.verifier.verify_claims(text)
        except IdentityError as exc:
            raise IdentityRefused(f"identity_invalid:{exc.code}", exc.message) from None
        bound = claims.get(RECORD_CLAIM)
        if not isinstance(bound, str):
            raise IdentityRefused("identity_invalid:unbound", f"the token has no {RECORD_CLAIM} claim binding it to "
                                  "this record; a bearer token alone is refused")
        expected = record_digest(record.topic, record.key, record.value, event_id)
        if not hmac.compare_digest(bound.lower().encode("ascii", errors="replace"), expected.encode()):
            raise IdentityRefused("identity_invalid:wrong_record", "the token is bound to another record "
                                  "(its topic, event id, key or value differ): a copied token")
        return principal

    def _signature(self, record: RawRecord, event_id: str, key_id: bytes | None,
                   signature: bytes | None) -> Principal:
        if key_id is None or signature is None:
            raise IdentityRefused("identity_invalid:malformed", f"{KEY_ID_HEADER} and {SIGNATURE_HEADER} go together")
        account = self.accounts.get(key_id.decode("ascii", errors="replace"))
        if account is None:
            raise IdentityRefused("identity_invalid:unknown_key", "the signature's key id is not a service account here")
        given = _signature_bytes(signature)
        secret, principal = account
        expected = hmac.new(secret, record_binding(record.topic, record.key, record.value, event_id),
                            hashlib.sha256).digest()
        if given is None or not hmac.compare_digest(given, expected):
            raise IdentityRefused("identity_invalid:bad_signature", "the record's signature does not verify")
        return principal


def _header(record: RawRecord, name: str) -> bytes | None:
    found = [v for k, v in record.headers if k == name]
    if len(found) > 1:
        raise IdentityRefused("identity_invalid:malformed", f"the {name} header appears {len(found)} times")
    return found[0] if found else None


def _signature_bytes(value: bytes) -> bytes | None:
    if len(value) > MAX_SIGNATURE_CHARS:
        return None
    try:
        return bytes.fromhex(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def authorize(principal: Principal, policy: Policy, dataset: str) -> None:
    """``IdentityRefused`` unless the dataset's ``producers`` allow ``principal``."""
    producers = policy.datasets[dataset].producers
    if producers is None or not producers.allows(principal.subject, principal.groups):
        raise IdentityRefused("producer_not_authorized", f"the producer may not write dataset {dataset!r}")


def build_producer_check(policy: Policy, settings: Any) -> ProducerCheck | None:
    """From the policy and settings; ``ValueError`` says what to set. ``None`` when no dataset needs it."""
    if all(d.identity == "off" for d in policy.datasets.values()):
        return None
    secrets = settings.producer_secrets()
    missing = [a.key for a in policy.service_accounts if a.key not in secrets]
    if missing:
        raise ValueError(f"service account keys {missing} have no secret: set RESIDENCY_PRODUCER_KEYS or "
                         f"RESIDENCY_PRODUCER_KEYS_FILE (a JSON object of key id to secret)")
    short = [a.key for a in policy.service_accounts if len(secrets[a.key]) < 32]
    if short:
        raise ValueError(f"service account keys {short} are shorter than 32 bytes; use longer secrets")
    accounts = {a.key: (secrets[a.key], Principal(a.subject, tuple(a.groups), "service-account", None, 0))
                for a in policy.service_accounts}
    jwt_settings = {"RESIDENCY_PRODUCER_JWKS": settings.producer_jwks,
                    "RESIDENCY_PRODUCER_JWT_ISSUER": settings.producer_jwt_issuer,
                    "RESIDENCY_PRODUCER_JWT_AUDIENCE": settings.producer_jwt_audience}
    unset = [name for name, value in jwt_settings.items() if not value]
    if unset and (len(unset) < len(jwt_settings) or not accounts):
        raise ValueError(f"producer identity is not configured: set {', '.join(unset)}"
                         + ("" if accounts else " (or declare service_accounts in the policy)"))
    if unset:
        return ProducerCheck(accounts=accounts)
    source = str(settings.producer_jwks)
    snapshot = KeySnapshot(read_jwks(source))
    verifier = JwtVerifier(source, str(settings.producer_jwt_issuer), str(settings.producer_jwt_audience),
                           settings.jwt_leeway_s, keys=snapshot)
    return ProducerCheck(verifier=verifier, accounts=accounts, snapshot=snapshot, jwks_source=source)

