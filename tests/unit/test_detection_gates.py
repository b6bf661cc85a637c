"""The shortcuts in front of the detectors never hide a finding.

Each detector's gate, each decoder's ``possible`` and the engine's ``quiet`` test are necessary
conditions: whenever the ungated detector or decoder finds something, its gate is open. Checked on
the detectors' own valid values under evasions, on slices of them (near every threshold) and on
random ASCII rich in the bytes the gates look at.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import random
import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.detection import Budget, samples
from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.encoded import DECODERS, base64_tokens
from pipeline.detection.engine import _all, _digit_findings, scan
from pipeline.detection.facts import Facts
from pipeline.normalize import digit_runs, normalize

EVASIONS = sorted(samples.CHARACTER_EVASIONS) + sorted(samples.ENCODING_EVASIONS)
ALPHABET = "0123456789abcdefxyzABXYZ .-/:@%\\+=_()[]<>{}\"'#\n\tu"
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The shortest value of each kind, right at its gate's thresholds.
MINIMAL = [
    ("phone", "+6837012"),  # Niue: seven digits
    ("phone", "tel 22 22 22 22"),
    ("ipv4", "1.2.3.4"),
    ("ipv4", "1[.]2[.]3[.]4"),
    ("ipv6", "a::b"),
    ("ipv6", "1:2:3:4:5:6:1.2.3.4"),  # six colons and a dotted quad
    ("ipv6", "1:2:3:4:5:6:7:8"),
    ("email", "a@b.co"),
    ("email", "a [at] b [dot] co"),
    ("email", "a(at)b(dot)co"),
    ("iban", "NO9386011117947"),  # Norway: fifteen characters
    ("it_codice_fiscale", "RSSMRAURTMLARSNL"),  # every digit replaced by its omocodia letter
    ("es_dni", "12345678Z"),
    ("es_nie", "X1234567L"),
    ("fr_nir_corsica", "1 85 05 2A 123 456 33"),
    ("us_ssn", "123-45-6789"),
    ("nl_bsn", "bsn 111222333"),
]
_REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r))


@st.composite
def texts(draw: st.DrawFn) -> str:
    """A valid value in a template under evasions, a slice of one, or random gate-relevant ASCII."""
    shape = draw(st.sampled_from(["value", "slice", "random", "joined", "phone", "ipv6", "minimal"]))
    if shape == "random":
        return draw(st.text(alphabet=ALPHABET, max_size=80))
    if shape == "phone":  # every region's example number, so the shortest numbers come up too
        number = phonenumbers.example_number(draw(st.sampled_from(_REGIONS)))
        style = draw(st.sampled_from([phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]))
        return "tel " + phonenumbers.format_number(number, style)
    if shape == "ipv6":
        address = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
        v4 = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
        return draw(st.sampled_from([str(address), address.exploded, address.exploded.rsplit(":", 2)[0] + f":{v4}"]))
    if shape == "minimal":
        return draw(st.sampled_from(MINIMAL))[1]
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(sorted(samples.GENERATORS)))
    evasions = draw(st.lists(st.sampled_from(EVASIONS), unique=True, max_size=3))
    text = rng.choice(samples.TEMPLATES[kind]).format(v=samples.evade(samples.GENERATORS[kind](rng), rng, evasions))
    if shape == "slice":
        start = draw(st.integers(0, len(text)))
        return text[start : draw(st.integers(start, len(text)))]
    if shape == "joined":
        return draw(st.text(alphabet=ALPHABET, max_size=6)) + text + draw(st.text(alphabet=ALPHABET, max_size=6))
    return text


def _gate_open(gate, facts: Facts) -> bool:
    data = facts.data
    return (facts.digits >= gate.digits and facts.letters >= gate.letters
            and facts.digits + facts.letters >= gate.alnum
            and (not gate.any_of or any(byte in data for byte in gate.any_of))
            and (gate.check is None or gate.check(data)))


@pytest.mark.parametrize(("kind", "text"), MINIMAL)
def test_when_a_value_is_as_short_as_its_kind_allows_then_it_is_still_found(kind, text):
    assert kind in {s.type for s in scan(text)}


@SETTINGS
@given(text=texts())
def test_when_a_detector_finds_something_then_its_gate_is_open(text):
    view = normalize(text)
    facts = Facts(view.data)
    detectors = _all()
    ctx = ScanContext(view, Budget(None, None), "ssn nhs bsn pesel personnummer")
    for detector in detectors.pattern:
        if list(detector.find(ctx)):
            assert _gate_open(detector.gate, facts), detector.name
    if _digit_findings(ctx, detectors):
        assert facts.digit_run(detectors.min_digits)
    for decoder in DECODERS:
        if list(decoder.decode(view.data)):
            assert decoder.possible(facts), decoder.decode.__name__


# One phone per branch of PhoneDetector.confirm, with no other reason to look at the view.
EVERY_PHONE_BRANCH = ["see (201) 555-0123 today", "020 7946 0958", "0049 30 901820", "+49 30 901820",
                      "ring 2015550123 now", "2015550123 (mobile)", "see -0049 30 901820", "x /020 7946 0958",
                      "a,020 7946 0958"]


@pytest.mark.parametrize("text", EVERY_PHONE_BRANCH)
def test_when_a_phone_is_written_in_any_accepted_shape_then_the_phone_shortcut_lets_it_through(text):
    phone = next(d for d in _all().pattern if d.name == "phone")
    assert list(phone.find(ScanContext(normalize(text), Budget(None, None))))
    assert [s.type for s in scan(text)] == ["phone"]


@SETTINGS
@given(text=st.one_of(texts(), st.sampled_from(EVERY_PHONE_BRANCH)),
       hint=st.sampled_from([None, "", "note", "phone", "hotel", "body tel"]))
def test_when_the_phone_detector_skips_a_view_then_it_would_have_confirmed_nothing(text, hint):
    ctx = ScanContext(normalize(text), Budget(None, None), hint)
    phone = next(d for d in _all().pattern if d.name == "phone")
    assert list(phone.find(ctx)) == list(PatternDetector.find(phone, ctx))


@SETTINGS
@given(text=texts())
def test_when_the_engine_calls_a_view_quiet_then_every_gate_is_closed(text):
    facts = Facts(normalize(text).data)
    detectors = _all()
    if detectors.quiet(facts):
        assert not any(_gate_open(d.gate, facts) for d in detectors.pattern)
        assert not facts.digit_run(detectors.min_digits)
        assert not any(decoder.possible(facts) for decoder in DECODERS)
        assert scan(text) == []


@SETTINGS
@given(text=texts())
def test_when_a_view_has_digit_runs_then_the_run_test_agrees_with_digit_runs(text):
    data = normalize(text).data
    longest = max((len(run.digits) for run in digit_runs(data)), default=0)
    for length in (1, 7, 9, 13):
        assert Facts(data).digit_run(length) == (longest >= length)


def _reference_base64_tokens(data: bytes) -> list[tuple[int, int, str]]:
    """The straightforward version: regex candidates, strict decoding, a per-character control count."""
    found = []
    for match in re.finditer(rb"[A-Za-z0-9+/_-]{8,}={0,2}", data):
        token = match.group().rstrip(b"=")
        if len(token) % 4 == 1:
            continue
        try:
            raw = base64.b64decode(token.translate(bytes.maketrans(b"-_", b"+/")) + b"=" * (-len(token) % 4),
                                   validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        controls = sum(ch < " " and ch not in "\t\r\n" or ch in "\x7f\ufffd" for ch in decoded)
        if len(raw) >= 4 and controls <= 0.05 * len(decoded):
            found.append((match.start(), match.end(), decoded))
    return found


@SETTINGS
@given(text=st.one_of(
    texts(),
    st.text(alphabet="AZaz09+/_-= .=", max_size=60),
    st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode()),
    st.text(max_size=20).map(lambda s: "x " + base64.urlsafe_b64encode(s.encode()).decode() + "=="),
))
def test_when_base64_tokens_are_decoded_then_they_match_the_reference(text):
    data = normalize(text).data
    assert list(base64_tokens(data)) == _reference_base64_tokens(data)
    assert Facts(data).base64_run() == bool(re.search(rb"[A-Za-z0-9+/_-]{8}", data))
