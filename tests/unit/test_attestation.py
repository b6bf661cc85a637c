"""Batch attestations (v2): one signature per batch of records, each record verifiable on its own."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.attestation import (
    BATCH_LEAVES, Attestor, VerifiedRoots, _leaf, _levels, _path, attestation_message, merkle_root, verify_record,
)
from pipeline.audit import generate_signing_key, load_public_keys, load_signing_key
from pipeline.outputs import Output, Seal, sealed

TOPIC, POLICY = "eu.cleared.payments", "sha256:abc"


class CountingSigner:
    def __init__(self) -> None:
        self.inner = load_signing_key(generate_signing_key())
        self.key_id = self.inner.key_id
        self.signed = 0

    def sign(self, message: bytes) -> bytes:
        self.signed += 1
        return self.inner.sign(message)


@pytest.fixture(scope="module")
def signer() -> CountingSigner:
    return CountingSigner()


@pytest.fixture(scope="module")
def trusted(signer):
    return load_public_keys([signer.inner.public_key_pem()])


def _records(n: int) -> list[tuple[str, bytes, bytes]]:
    return [(f"e{i}", f"k{i}".encode(), b'{"n":%d}' % i) for i in range(n)]


def _attested(attestor: Attestor, records) -> list[list[tuple[str, bytes]]]:
    headers = attestor.headers([attestation_message(TOPIC, e, POLICY, k, v) for e, k, v in records])
    return [[("event-id", e.encode()), ("policy-hash", POLICY.encode()), ("residency-attestation", h)]
            for (e, _, _), h in zip(records, headers, strict=True)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, BATCH_LEAVES - 1, BATCH_LEAVES, BATCH_LEAVES + 1, 3 * BATCH_LEAVES + 7])
def test_when_a_batch_is_attested_then_every_record_verifies_with_one_signature_per_chunk(signer, trusted, n):
    before = signer.signed
    records = _records(n)
    headers = _attested(Attestor(signer), records)
    assert signer.signed - before == -(-n // BATCH_LEAVES)
    roots = VerifiedRoots()
    for (e, k, v), h in zip(records, headers, strict=True):
        assert h[-1][1].startswith(b"v2:")
        assert verify_record(TOPIC, k, v, h, trusted).ok
        assert verify_record(TOPIC, k, v, h, trusted, roots).ok
    assert len(roots._seen) == -(-n // BATCH_LEAVES)  # noqa: SLF001 - one check per signature


def test_when_records_of_one_batch_are_changed_or_swapped_then_none_verifies(signer, trusted):
    records = _records(9)
    headers = _attested(Attestor(signer), records)
    roots = VerifiedRoots()
    assert verify_record(TOPIC, b"k0", b'{"n":0}', headers[0], trusted, roots).ok  # the root is now known
    for cache in (None, roots):
        assert verify_record(TOPIC, b"k1", b'{"n":2}', headers[1], trusted, cache).status == "bad_signature"
        assert verify_record(TOPIC, b"k2", b'{"n":2}', headers[1], trusted, cache).status == "bad_signature"
        assert verify_record("eu.egress.us.payments", b"k1", b'{"n":1}', headers[1], trusted, cache).status \
            == "bad_signature"
        # another record's attestation header with this record's event id
        moved = [headers[1][0], headers[1][1], headers[2][2]]
        assert verify_record(TOPIC, b"k1", b'{"n":1}', moved, trusted, cache).status == "bad_signature"


def _tampered(header: bytes, part: int, new: str) -> bytes:
    fields = header.decode().split(":")
    fields[part] = new
    return ":".join(fields).encode()


def test_when_the_index_count_or_path_is_altered_then_the_record_does_not_verify(signer, trusted):
    records = _records(6)
    headers = _attested(Attestor(signer), records)
    e, k, v = records[2]
    original = headers[2][2][1]
    path = base64.b64decode(original.decode().split(":")[5])
    cases = {
        _tampered(original, 3, "3"): {"bad_signature", "malformed"},
        _tampered(original, 3, "6"): {"malformed"},  # index past the count
        _tampered(original, 3, "-1"): {"malformed"},
        _tampered(original, 4, "7"): {"bad_signature", "malformed"},
        _tampered(original, 4, "0"): {"malformed"},
        _tampered(original, 5, base64.b64encode(path[:-32]).decode()): {"malformed"},
        _tampered(original, 5, base64.b64encode(path + path[:32]).decode()): {"malformed"},
        _tampered(original, 5, base64.b64encode(bytes([path[0] ^ 1]) + path[1:]).decode()): {"bad_signature"},
        _tampered(original, 5, "not base64!"): {"malformed"},
        original + b":extra": {"malformed"},
        b"v3" + original[2:]: {"malformed"},
    }
    for header, allowed in cases.items():
        verdict = verify_record(TOPIC, k, v, [headers[2][0], headers[2][1], ("residency-attestation", header)], trusted)
        assert verdict.status in allowed, (header, verdict)


def test_when_a_record_carries_a_v1_attestation_then_it_still_verifies(signer, trusted):
    signature = signer.inner.sign(attestation_message(TOPIC, "e1", POLICY, b"k", b"v"))
    headers = [("event-id", b"e1"), ("policy-hash", POLICY.encode()),
               ("residency-attestation", f"v1:{signer.key_id}:{base64.b64encode(signature).decode()}".encode())]
    assert verify_record(TOPIC, b"k", b"v", headers, trusted, VerifiedRoots()).ok
    assert verify_record(TOPIC, b"k", b"w", headers, trusted).status == "bad_signature"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.data())
def test_every_leaf_and_its_path_lead_to_the_root_and_no_other_leaf_does(n, data):
    leaves = [_leaf(b"m%d" % i) for i in range(n)]
    levels = _levels(leaves)
    root = levels[-1][0]
    i = data.draw(st.integers(0, n - 1))
    path = _path(levels, i)
    assert merkle_root(leaves[i], i, n, path) == root
    if n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
        assert merkle_root(leaves[j], i, n, path) != root
        assert merkle_root(leaves[i], j, n, path) in (None,) or merkle_root(leaves[i], j, n, path) != root


def test_when_outputs_are_sealed_then_only_the_sealed_ones_get_a_verifying_header(signer, trusted):
    attestor = Attestor(signer)
    outputs = [Output(TOPIC, b"k1", b"v1", [("event-id", b"e1"), ("policy-hash", POLICY.encode())],
                      Seal(attestor, "e1", POLICY)),
               Output("eu.held.payments", b"e2", b"{}", [("event-id", b"e2")]),
               Output("eu.egress.us.payments", None, b"v3", [("event-id", b"e3"), ("policy-hash", POLICY.encode())],
                      Seal(attestor, "e3", POLICY))]
    done = sealed(outputs)
    assert done[1] is outputs[1] and all(o.seal is None for o in done)
    assert [o.topic for o in done] == [o.topic for o in outputs]
    for out in (done[0], done[2]):
        assert verify_record(out.topic, out.key, out.value, out.headers, trusted).ok
    assert sealed(done) is done  # nothing left to seal


def _documented_message(topic: str, event_id: str, policy_hash: str, key: bytes | None, value: bytes | None) -> bytes:
    """The signed bytes as the format defines them (docs/producers.md), written out plainly."""
    def field(data: bytes | None) -> bytes:
        return b"\xff\xff\xff\xff" if data is None else struct.pack(">I", len(data)) + data
    return b"residency-attestation/v1" + b"".join(
        field(x) for x in (topic.encode(), event_id.encode(), policy_hash.encode(), key, value))


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=80), st.none() | st.binary(max_size=64),
       st.none() | st.binary(max_size=2048))
def test_the_signed_message_is_the_documented_one(topic, event_id, policy_hash, key, value) -> None:
    assert attestation_message(topic, event_id, policy_hash, key, value) == \
        _documented_message(topic, event_id, policy_hash, key, value)
    message = attestation_message(topic, event_id, policy_hash, key, value)
    assert _leaf(message) == hashlib.sha256(b"\x00" + message).digest()
