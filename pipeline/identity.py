"""Who is calling: OIDC-style JWTs verified against a JWKS, and a local issuer for demos and tests.

Shared by approver identity (issue 6) and producer identity (issue 7). Only asymmetric algorithms
are accepted (a JWKS holds public keys, so ``none`` and HS* are never valid here). Every failure is an
:class:`IdentityError` with a stable ``code``; no message ever quotes the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"})
MAX_TOKEN_BYTES = 16_384
CODES = ("malformed", "bad_signature", "expired", "not_yet_valid", "wrong_issuer", "wrong_audience",
         "unknown_key", "missing_claim")


class IdentityError(Exception):
    """A token was refused; ``code`` is one of :data:`CODES`, ``message`` never includes the token."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    groups: tuple[str, ...]
    issuer: str
    token_id: str | None
    expires_at: int

    def as_dict(self) -> dict[str, Any]:
        """The principal as stored in records: subject and groups (never the token)."""
        return {"subject": self.subject, "groups": list(self.groups)}


class _FileKeys:
    """A JWKS file, re-read when it changes (key rotation without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._lock = threading.Lock()

    def get(self, kid: str | None) -> jwt.PyJWK:
        with self._lock:
            try:
                stat = self.path.stat()
                if self._stamp != (stat.st_mtime, stat.st_size):
                    jwks = jwt.PyJWKSet.from_json(self.path.read_text())
                    self._keys = {k.key_id: k for k in jwks.keys}
                    self._stamp = (stat.st_mtime, stat.st_size)
            except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                raise IdentityError("unknown_key", f"cannot read the JWKS file ({type(exc).__name__})") from None
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            key = self._keys.get(kid)
        if key is None:
            raise IdentityError("unknown_key", "the token's signing key id is not in the JWKS; signature unverifiable")
        return key


class _UrlKeys:
    def __init__(self, url: str) -> None:
        self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)

    def get(self, kid: str | None) -> jwt.PyJWK:
        try:
            if kid is None:
                keys = self._client.get_signing_keys()
                if len(keys) != 1:
                    raise IdentityError("unknown_key", "the token has no key id and the JWKS holds several keys")
                return keys[0]
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise IdentityError("unknown_key", "the JWKS URL could not be fetched") from None
        except jwt.PyJWKClientError:
            raise IdentityError("unknown_key", "the token's signing key id is not in the JWKS; signature unverifiable") from None


_ERRORS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the token is not valid yet (nbf or iat in the future)"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token was issued by an issuer this fleet does not trust"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token is for another audience"),
    (jwt.MissingRequiredClaimError, "missing_claim", "the token lacks a required claim"),
    (jwt.InvalidSignatureError, "bad_signature", "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "bad_signature", "the token's algorithm is not accepted"),
    (jwt.DecodeError, "malformed", "the token cannot be decoded"),
    (jwt.InvalidTokenError, "malformed", "the token is invalid"),
)


class JwtVerifier:
    """Verify tokens: signature (JWKS), issuer, audience, expiry and not-before, with ``leeway_s``."""

    def __init__(self, jwks: str | Path, issuer: str, audience: str, leeway_s: float = 30,
                 keys: Any = None) -> None:
        source = str(jwks)
        if keys is not None:  # any object with get(kid) -> PyJWK, e.g. an in-memory snapshot
            self._keys = keys
        else:
            self._keys = _UrlKeys(source) if source.startswith(("https://", "http://")) else _FileKeys(Path(source))
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    def verify(self, token: str | bytes | None) -> Principal:
        return self.verify_claims(token)[0]

    def verify_claims(self, token: str | bytes | None) -> tuple[Principal, dict[str, Any]]:
        """The principal and every verified claim (for checks beyond identity, e.g. a record binding)."""
        if isinstance(token, bytes):
            token = token.decode("ascii", errors="replace")
        if not token or not isinstance(token, str):
            raise IdentityError("malformed", "no token was given")
        token = token.strip()
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise IdentityError("malformed", "the token is not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise IdentityError("malformed", "the token header cannot be decoded") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise IdentityError("bad_signature", f"algorithm {str(alg)[:16]!r} is not accepted (asymmetric only)")
        kid = header.get("kid")
        key = self._keys.get(kid if isinstance(kid, str) else None)
        if getattr(key, "algorithm_name", alg) != alg:
            raise IdentityError("bad_signature", "the token's algorithm does not match its key")
        claims = self._decode(token, key, alg)
        return _principal(claims), claims

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway_s, options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            for kind, code, message in _ERRORS:
                if isinstance(exc, kind):
                    if code == "missing_claim":
                        message = f"the token lacks the {getattr(exc, 'claim', '?')!s} claim"
                    raise IdentityError(code, message) from None
            raise IdentityError("malformed", "the token is invalid") from None


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise IdentityError("missing_claim", "the token's sub claim is empty")
    groups = claims.get("groups", [])
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise IdentityError("malformed", "the token's groups claim is not a list of strings")
    jti = claims.get("jti")
    return Principal(subject=subject, groups=tuple(groups), issuer=str(claims["iss"]),
                     token_id=jti if isinstance(jti, str) else None, expires_at=int(claims["exp"]))


DEFAULT_ISSUER = "residency-local-idp"
DEFAULT_AUDIENCE = "residency-approvals"
_KEY_FILE = "signing-key.pem"
_JWKS_FILE = "jwks.json"
_CONFIG_FILE = "issuer.json"


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 key id: SHA-256 of the key's required members, so a different key never shares a kid."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class LocalIssuer:
    """A demo identity provider in a directory: an ES256 key, its JWKS, and a ``mint`` for test users."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        try:
            pem = (self.dir / _KEY_FILE).read_bytes()
            config = json.loads((self.dir / _CONFIG_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise IdentityError("unknown_key", f"{self.dir}: not a local issuer ({type(exc).__name__}); "
                                               f"run `residency idp init --dir {self.dir}`") from None
        self._key = serialization.load_pem_private_key(pem, password=None)
        self.kid: str = config["kid"]
        self.issuer: str = config["issuer"]
        self.audience: str = config["audience"]

    @property
    def jwks_path(self) -> Path:
        return self.dir / _JWKS_FILE

    @classmethod
    def create(cls, directory: str | Path, issuer: str = DEFAULT_ISSUER,
               audience: str = DEFAULT_AUDIENCE) -> LocalIssuer:
        """Generate a key pair in ``directory``: ``jwks.json`` (public) and the private key (0600)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        kid = _thumbprint(jwk)
        jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        key_path = path / _KEY_FILE
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        key_path.chmod(0o600)
        (path / _JWKS_FILE).write_text(json.dumps({"keys": [jwk]}, indent=2))
        (path / _CONFIG_FILE).write_text(json.dumps({"kid": kid, "issuer": issuer, "audience": audience}))
        return cls(path)

    def mint(self, subject: str, groups: list[str] | tuple[str, ...] = (), ttl_s: int = 3600,
             audience: str | None = None, issuer: str | None = None, not_before: int | None = None,
             jti: str | None = None, extra: dict[str, Any] | None = None) -> str:
        """A signed token; ``ttl_s`` may be negative (an expired token), ``not_before`` is epoch seconds."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": subject, "groups": list(groups), "iss": issuer or self.issuer, "aud": audience or self.audience,
            "iat": min(now, now + ttl_s), "exp": now + ttl_s, "jti": jti or uuid.uuid4().hex, **(extra or {}),
        }
        if not_before is not None:
            claims["nbf"] = int(not_before)
            claims["iat"] = min(claims["iat"], int(not_before))
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})

    def record_minter(self, subject: str, groups: list[str] | tuple[str, ...] = (), ttl_s: int = 300,
                      **mint_options: Any) -> Any:
        """A producer token minter for demos and tests: each call binds a fresh token to one record."""
        return lambda digest: self.mint(subject, groups, ttl_s=ttl_s, extra={"record_sha256": digest}, **mint_options)

    def verifier(self, leeway_s: float = 30) -> JwtVerifier:
        return JwtVerifier(self.jwks_path, self.issuer, self.audience, leeway_s)


def approver_verifier(jwks: str | None, issuer: str | None, audience: str | None,
                      leeway_s: float = 30) -> JwtVerifier:
    """The verifier for approver tokens from settings; ``ValueError`` names what is missing."""
    missing = [name for name, value in (("RESIDENCY_JWKS", jwks), ("RESIDENCY_JWT_ISSUER", issuer),
                                        ("RESIDENCY_JWT_AUDIENCE", audience)) if not value]
    if missing:
        raise ValueError(f"approver identity is not configured: set {', '.join(missing)} "
                         "(a local issuer for demos: `residency idp init --dir DIR`)")
    if not str(jwks).startswith(("https://", "http://")) and not Path(str(jwks)).is_file():
        raise ValueError(f"RESIDENCY_JWKS: {jwks} is not a file")
    return JwtVerifier(str(jwks), str(issuer), str(audience), leeway_s)
