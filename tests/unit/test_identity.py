"""JWT verification against a JWKS, and the local demo issuer."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest

from pipeline.identity import IdentityError, JwtVerifier, LocalIssuer, approver_verifier


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer.create(tmp_path_factory.mktemp("idp"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer.create(tmp_path_factory.mktemp("other-idp"))


def _code(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(IdentityError) as caught:
        verifier.verify(token)
    assert token not in str(caught.value)
    return caught.value.code


def test_when_a_token_is_valid_then_the_principal_has_subject_groups_and_jti(issuer):
    token = issuer.mint("alice", ["payments-approvers", "admins"], jti="j-1")
    principal = issuer.verifier().verify(token)
    assert principal.subject == "alice"
    assert principal.groups == ("payments-approvers", "admins")
    assert principal.token_id == "j-1" and principal.issuer == issuer.issuer
    assert principal.expires_at > time.time()


@pytest.mark.parametrize(("case", "code"), [
    ("expired", "expired"),
    ("not_yet_valid", "not_yet_valid"),
    ("other_issuer", "wrong_issuer"),
    ("other_audience", "wrong_audience"),
    ("other_key", "unknown_key"),
    ("same_kid_other_key", "bad_signature"),
    ("tampered", "bad_signature"),
    ("alg_none", "bad_signature"),
    ("hs256", "bad_signature"),
    ("garbage", "malformed"),
    ("no_sub", "missing_claim"),
])
def test_when_a_token_is_bad_then_it_is_refused_with_its_code(issuer, other, case, code):
    now = int(time.time())
    token = {
        "expired": lambda: issuer.mint("alice", ttl_s=-120),
        "not_yet_valid": lambda: issuer.mint("alice", not_before=now + 600),
        "other_issuer": lambda: issuer.mint("alice", issuer="https://evil.example"),
        "other_audience": lambda: issuer.mint("alice", audience="another-service"),
        "other_key": lambda: other.mint("alice"),
        "same_kid_other_key": lambda: jwt.encode(
            {"sub": "alice", "iss": issuer.issuer, "aud": issuer.audience, "exp": now + 60},
            other._key, algorithm="ES256", headers={"kid": issuer.kid}),  # noqa: SLF001
        "tampered": lambda: _tamper(issuer.mint("alice", ["nobody"])),
        "alg_none": lambda: jwt.encode({"sub": "alice", "iss": issuer.issuer, "aud": issuer.audience,
                                        "exp": now + 60}, None, algorithm="none"),
        "hs256": lambda: jwt.encode({"sub": "alice", "iss": issuer.issuer, "aud": issuer.audience,
                                     "exp": now + 60}, "k" * 32, algorithm="HS256", headers={"kid": issuer.kid}),
        "garbage": lambda: "not-a-token",
        "no_sub": lambda: jwt.encode({"iss": issuer.issuer, "aud": issuer.audience, "exp": now + 60},
                                     issuer._key, algorithm="ES256", headers={"kid": issuer.kid}),  # noqa: SLF001
    }[case]()
    assert _code(issuer.verifier(), token) == code


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["groups"] = ["payments-approvers"]
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged}.{signature}"


def test_when_a_token_expired_within_the_leeway_then_it_is_still_accepted(issuer):
    assert issuer.verifier(leeway_s=30).verify(issuer.mint("alice", ttl_s=-5)).subject == "alice"


def test_when_no_token_is_given_then_it_is_malformed(issuer):
    for token in (None, "", b""):
        with pytest.raises(IdentityError) as caught:
            issuer.verifier().verify(token)
        assert caught.value.code == "malformed"


def test_when_the_issuer_is_created_then_the_private_key_is_private_and_the_jwks_public(issuer):
    key = issuer.dir / "signing-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    jwks = json.loads(issuer.jwks_path.read_text())
    assert [k["kid"] for k in jwks["keys"]] == [issuer.kid]
    assert all("d" not in k for k in jwks["keys"])


def test_when_the_jwks_file_is_rotated_then_the_new_key_is_trusted_without_a_restart(tmp_path):
    first = LocalIssuer.create(tmp_path / "a")
    verifier = first.verifier()
    assert verifier.verify(first.mint("alice")).subject == "alice"
    second = LocalIssuer.create(tmp_path / "b", issuer=first.issuer, audience=first.audience)
    both = {"keys": json.loads(first.jwks_path.read_text())["keys"] + json.loads(second.jwks_path.read_text())["keys"]}
    first.jwks_path.write_text(json.dumps(both, indent=4))
    assert verifier.verify(second.mint("bob")).subject == "bob"


def test_when_approver_identity_settings_are_missing_then_the_error_names_them(tmp_path: Path):
    with pytest.raises(ValueError, match="RESIDENCY_JWKS, RESIDENCY_JWT_AUDIENCE"):
        approver_verifier(None, "iss", None)
    with pytest.raises(ValueError, match="is not a file"):
        approver_verifier(str(tmp_path / "nope.json"), "iss", "aud")
