"""Masking strategies: each one's output, non-string inputs, parameter errors and keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detection.checksums import luhn_valid
from pipeline.keys import KeyRing, MissingKeyError
from pipeline.masking.partial import PartialParams, mask_partially
from pipeline.masking import (
    DROP,
    MaskingError,
    StrategyError,
    build_strategy,
    decrypt,
    detokenize,
    params_model,
    strategy_names,
)

KEYS = KeyRing({"k1": b"1" * 32, "k2": b"2" * 32})


def mask(name, raw, **params):
    return build_strategy(name, params, KEYS).mask(raw)


def test_when_registry_is_listed_then_every_strategy_is_there():
    assert strategy_names() == sorted(
        ["drop", "email", "encrypt", "generalize", "hash", "partial", "redact", "replace", "tokenize"]
    )


@pytest.mark.parametrize(
    ("name", "params", "value", "expected"),
    [
        ("redact", {}, "secret", "[REDACTED]"),
        ("redact", {}, {"nested": [1, 2]}, "[REDACTED]"),
        ("redact", {}, None, "[REDACTED]"),
        ("redact", {"text": "***"}, 42, "***"),
        ("replace", {"value": 0}, "x", 0),
        ("replace", {"value": {"a": None}}, [1], {"a": None}),
        ("drop", {}, "x", DROP),
        ("partial", {}, "4111111111111111", "************1111"),
        ("partial", {}, "4111 1111 1111 1111", "**** **** **** 1111"),
        ("partial", {"preserve_separators": False}, "41-11-1111", "******1111"),
        ("partial", {"keep_first": 2, "keep_last": 0, "mask_char": "#"}, "abcdef", "ab####"),
        ("partial", {}, 4111111111111111, "************1111"),
        ("partial", {}, True, "****"),
        ("partial", {}, "1234", "****"),
        ("partial", {}, {"a": "12345678", "b": None}, {"a": "****5678", "b": None}),
        ("email", {}, "john.doe@example.com", "***@example.com"),
        ("email", {"keep_first": 1}, "john@example.com", "j***@example.com"),
        ("email", {}, "not-an-email", "***"),
        ("email", {}, 12, "***"),
        ("generalize", {"kind": "date", "granularity": "year"}, "2024-03-15", "2024"),
        ("generalize", {"kind": "date", "granularity": "month"}, "2024-03-15T10:00:00Z", "2024-03"),
        ("generalize", {"kind": "number", "bucket": 10.0}, 42, "40-50"),
        ("generalize", {"kind": "number", "bucket": 5.0}, "17.5", "15-20"),
        ("generalize", {"kind": "coordinates", "precision": 2}, 48.85661, 48.86),
        ("generalize", {"kind": "coordinates", "precision": 1}, [48.85, 2.35], [48.9, 2.4]),
        ("generalize", {"kind": "coordinates", "precision": 1}, "48.85,2.35", "48.9,2.4"),
    ],
)
def test_when_strategy_masks_then_output_is_expected(name, params, value, expected):
    assert mask(name, value, **params) == expected


@pytest.mark.parametrize(
    ("params", "value"),
    [
        ({"kind": "date", "granularity": "year"}, "yesterday"),
        ({"kind": "date", "granularity": "year"}, 2024),
        ({"kind": "number", "bucket": 10.0}, "ten"),
        ({"kind": "number", "bucket": 10.0}, True),
        ({"kind": "coordinates", "precision": 2}, {"lat": "north"}),
    ],
)
def test_when_generalize_gets_the_wrong_shape_then_it_refuses_without_the_value(params, value):
    with pytest.raises(MaskingError) as info:
        mask("generalize", value, **params)
    assert str(value) not in str(info.value)


def test_when_hash_runs_then_it_is_keyed_deterministic_and_names_its_key():
    strategy = build_strategy("hash", {"key": "k1"}, KEYS)
    first = strategy.mask("alice@example.com")
    assert first == strategy.mask("alice@example.com") and first.startswith("hmac:k1:")
    assert strategy.key_id == "k1"
    assert first != mask("hash", "alice@example.com", key="k2")
    assert strategy.mask(first) == first  # re-masking is a no-op
    assert len(mask("hash", "x", key="k1", length=16, prefix=False)) == 16
    assert mask("hash", 123, key="k1") == mask("hash", "123", key="k1")
    assert mask("hash", None, key="k1") is None


@pytest.mark.parametrize(
    "value",
    ["4111 1111 1111 1111", "4111111111111112", "+44 20 7946 0958", "john.doe@example.com", "AB12CD",
     "a longer free-text value, with punctuation!", 1234, 3.5, True, {"card": "4111111111111111", "n": 7}],
)
def test_when_value_is_tokenized_then_only_the_key_holder_gets_it_back(value):
    strategy = build_strategy("tokenize", {"key": "k1"}, KEYS)
    token = strategy.mask(value)
    assert token != value and token == strategy.mask(value)
    assert detokenize(token, {"key": "k1"}, KEYS) == value
    try:
        assert detokenize(token, {"key": "k1", "context": "other"}, KEYS) != value
    except MaskingError:
        pass  # envelopes authenticate their context and refuse outright


def test_when_card_is_tokenized_then_the_token_keeps_shape_and_luhn_validity():
    token = mask("tokenize", "4111 1111 1111 1111", key="k1")
    digits = token.replace(" ", "")
    assert len(token) == 19 and token[4] == " " and digits.isdigit() and luhn_valid(digits)
    assert not luhn_valid(mask("tokenize", "4111111111111112", key="k1"))


def test_when_value_is_encrypted_then_decrypt_restores_it_and_key_deletion_shreds_it():
    strategy = build_strategy("encrypt", {"key": "k1", "context": "payments"}, KEYS)
    token = strategy.mask({"card": "4111111111111111"})
    assert token.startswith("enc:v1:k1:") and strategy.mask(token) == token
    assert decrypt(token, KEYS, "payments") == {"card": "4111111111111111"}
    with pytest.raises(MaskingError):
        decrypt(token, KEYS, "other-dataset")
    with pytest.raises(MissingKeyError):
        decrypt(token, KeyRing({"k2": b"2" * 32}), "payments")


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("nope", {}, "unknown masking strategy 'nope'"),
        ("partial", {"keep_lst": 1}, "param 'keep_lst'"),
        ("partial", {"keep_last": "4"}, "param 'keep_last'"),
        ("partial", {"keep_last": -1}, "param 'keep_last'"),
        ("partial", {"mask_char": "**"}, "param 'mask_char'"),
        ("hash", {}, "param 'key'"),
        ("hash", {"key": "k1", "length": 8}, "param 'length'"),
        ("replace", {}, "param 'value'"),
        ("generalize", {"kind": "date"}, "needs 'granularity'"),
        ("generalize", {"kind": "date", "granularity": "year", "bucket": 1.0}, "does not apply"),
        ("redact", {"text": 5}, "param 'text'"),
    ],
)
def test_when_strategy_or_params_are_wrong_then_error_names_them(name, params, fragment):
    with pytest.raises(StrategyError) as info:
        build_strategy(name, params, KEYS)
    assert fragment in str(info.value) and repr(name) in str(info.value)


@pytest.mark.parametrize("name", ["hash", "tokenize", "encrypt"])
def test_when_key_is_missing_then_building_fails(name):
    with pytest.raises(MissingKeyError):
        build_strategy(name, {"key": "absent"}, KEYS)


def test_when_policy_loads_then_params_validate_without_keys():
    model = params_model("hash")
    assert model.model_validate({"key": "k9"}).key == "k9"
    with pytest.raises(StrategyError):
        params_model("nope")


@pytest.mark.parametrize("name", ["redact", "replace", "drop", "partial", "email", "generalize"])
def test_when_strategy_is_unkeyed_then_key_id_is_none(name):
    params = {"replace": {"value": 0}, "generalize": {"kind": "number", "bucket": 1.0}}.get(name, {})
    assert build_strategy(name, params, KEYS).key_id is None


def _partial_reference(text: str, p: PartialParams) -> str:
    """The character-by-character definition: slots are the non-separator characters."""
    chars = list(text)
    slots = [i for i, c in enumerate(chars) if not p.preserve_separators or c not in " \t\r\n-./:()_+,"]
    keep_first, keep_last = (0, 0) if p.keep_first + p.keep_last >= len(slots) else (p.keep_first, p.keep_last)
    for i in slots[keep_first : len(slots) - keep_last]:
        chars[i] = p.mask_char
    return "".join(chars)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="ab12 -.é*#", max_size=12), keep_first=st.integers(0, 5), keep_last=st.integers(0, 5),
       mask_char=st.sampled_from("*#"), preserve_separators=st.booleans())
def test_when_partial_masks_any_text_then_it_follows_the_per_character_definition(text, keep_first, keep_last, mask_char,
                                                                                  preserve_separators):
    p = PartialParams(keep_first=keep_first, keep_last=keep_last, mask_char=mask_char,
                      preserve_separators=preserve_separators)
    assert mask_partially(text, p) == _partial_reference(text, p)
