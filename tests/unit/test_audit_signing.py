"""Checkpoint signing keys from settings material."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from pipeline.audit.signing import (
    SigningKeyError,
    generate_signing_key,
    load_public_keys,
    load_signing_key,
)


def pem_of(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_when_the_same_key_is_given_as_seed_or_pem_then_the_key_id_is_the_same():
    seed = generate_signing_key()
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed))
    from_seed, from_pem = load_signing_key(seed), load_signing_key(pem_of(private))
    assert from_seed.key_id == from_pem.key_id
    assert len(from_seed.key_id) == 16 and int(from_seed.key_id, 16) >= 0


def test_when_a_secret_str_is_given_then_it_is_accepted_and_never_shown():
    seed = generate_signing_key()
    signer = load_signing_key(SecretStr(seed))
    assert seed not in repr(signer) and signer.key_id in repr(signer)


@pytest.mark.parametrize("secret", [
    "", "not-base64!!", base64.b64encode(b"short").decode(),
    "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----",
])
def test_when_the_secret_is_not_a_key_then_loading_fails_without_echoing_it(secret):
    with pytest.raises(SigningKeyError) as caught:
        load_signing_key(secret)
    assert not secret or secret not in str(caught.value)


def test_when_the_pem_is_not_ed25519_then_loading_fails():
    with pytest.raises(SigningKeyError):
        load_signing_key(pem_of(ec.generate_private_key(ec.SECP256R1())))


def test_when_public_keys_are_loaded_then_they_are_indexed_by_key_id():
    signers = [load_signing_key(generate_signing_key()) for _ in range(2)]
    keys = load_public_keys([signer.public_key_pem() for signer in signers])
    assert set(keys) == {signer.key_id for signer in signers}


def test_when_a_public_key_is_not_pem_then_loading_fails():
    with pytest.raises(SigningKeyError):
        load_public_keys(["nope"])
