"""Properties over generated events: no checksum-valid value survives scan + redact under any
combination of evasions; masking is idempotent; keyed strategies are deterministic per key."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.detection import Budget, redact_spans, scan
from pipeline.detection import samples
from pipeline.keys import KeyRing
from pipeline.masking import build_strategy
from pipeline.normalize import normalize

STRONG = ["card", "iban", "fr_nir", "de_idnr", "es_dni", "es_nie", "it_codice_fiscale", "pl_pesel"]
LABELLED = ["us_ssn", "gb_nhs", "nl_bsn", "se_personnummer"]
EVASIONS = sorted(samples.CHARACTER_EVASIONS) + sorted(samples.ENCODING_EVASIONS)
KEYS = KeyRing({"k1": b"k" * 32, "k2": b"j" * 32})


def _compact(text: str) -> str:
    """Digits and letters only, after the detection view's folding: how a leak is compared."""
    return "".join(c for c in normalize(text).text.upper() if c.isalnum())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(STRONG + LABELLED),
    seed=st.integers(0, 2**32 - 1),
    evasions=st.lists(st.sampled_from(EVASIONS), unique=True, max_size=4),
    field=st.sampled_from(["note", "payer.comment", "items[0].memo"]),
)
def test_when_event_holds_a_valid_value_under_evasions_then_no_raw_value_survives(kind, seed, evasions, field):
    rng = random.Random(seed)
    value = samples.GENERATORS[kind](rng)
    character = [e for e in evasions if e in samples.CHARACTER_EVASIONS]
    encodings = [e for e in evasions if e in samples.ENCODING_EVASIONS][:1]
    evaded = samples.evade(value, rng, character)
    text = rng.choice(samples.TEMPLATES[kind]).format(v=evaded)
    if encodings:
        text = samples.ENCODING_EVASIONS[encodings[0]](text, rng)
    event = json.dumps({field: text, "id": "evt-1"})
    for string in (text, event):
        # what is found, not how fast: no clock (a loaded CI box overran the default 0.25 s once)
        redacted = redact_spans(string, scan(string, Budget(max_seconds=None)))
        assert _compact(value) not in _compact(redacted)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["redact", "partial", "email", "hash", "encrypt", "generalize_number"]),
    value=st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.none(),
                    st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3)),
)
def test_when_a_value_is_masked_twice_then_the_second_pass_changes_nothing(name, value):
    if name == "generalize_number":
        strategy, value = build_strategy("generalize", {"kind": "number", "bucket": 10.0}, KEYS), 37
    else:
        strategy = build_strategy(name, {"key": "k1"} if name in ("hash", "encrypt") else {}, KEYS)
    once = strategy.mask(value)
    assert strategy.mask(once) == once


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["hash", "tokenize"]),
    value=st.one_of(st.text(min_size=1, max_size=40), st.integers(), st.from_regex(r"[0-9]{6,19}", fullmatch=True)),
)
def test_when_keyed_strategy_masks_then_it_is_deterministic_per_key(name, value):
    first, again = (build_strategy(name, {"key": "k1"}, KEYS).mask(value) for _ in range(2))
    other = build_strategy(name, {"key": "k2"}, KEYS).mask(value)
    assert first == again and first != other
