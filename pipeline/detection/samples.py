"""Checksum-valid sample values and evasions, for tests, the benchmark and demo data.

Every generator takes a ``random.Random`` so corpora are reproducible from a seed. Values are made
valid by construction (check digits computed), never taken from a fixed list.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from urllib.parse import quote

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.pl import pesel
from stdnum.us import ssn

from pipeline.detection.checksums import luhn_valid
from pipeline.detection.iban import IBAN_LENGTHS

_CARD_PREFIXES = (("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
                  ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("62", 17), ("3530", 16), ("36", 14))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _luhn_complete(body: str) -> str:
    return next(body + d for d in string.digits if luhn_valid(body + d))


def card(rng: random.Random) -> str:
    prefix, length = rng.choice(_CARD_PREFIXES)
    return _luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))


def iban(rng: random.Random, country: str | None = None) -> str:
    """A valid IBAN built from the registry's BBAN structure for ``country`` (random if None)."""
    while True:
        cc = country or rng.choice(sorted(IBAN_LENGTHS))
        structure = stdnum_iban._ibandb.info(cc + "00")[0][1]["bban"]
        bban = ""
        for count, kind in _bban_parts(structure):
            alphabet = {"n": string.digits, "a": string.ascii_uppercase}.get(kind, string.digits + string.ascii_uppercase)
            bban += "".join(rng.choice(alphabet) for _ in range(count))
        value = cc + stdnum_iban.calc_check_digits(cc + "00" + bban) + bban
        if stdnum_iban.is_valid(value):  # country modules (e.g. ES, FR) add their own checks
            return value


def _bban_parts(structure: str) -> list[tuple[int, str]]:
    parts, number = [], ""
    for ch in structure:
        if ch.isdigit():
            number += ch
        elif ch in "nace":
            parts.append((int(number), ch))
            number = ""
    return parts


def us_ssn(rng: random.Random) -> str:
    while True:
        value = f"{rng.randint(1, 899):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        if ssn.is_valid(value):
            return value


def gb_nhs(rng: random.Random) -> str:
    while True:
        body = _digits(rng, 9)
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11
        if check != 10:
            value = body + str(check % 11)
            return f"{value[:3]} {value[3:6]} {value[6:]}"


def nl_bsn(rng: random.Random) -> str:
    while True:
        body = _digits(rng, 8)
        total = sum(int(d) * (9 - i) for i, d in enumerate(body))
        check = total % 11
        if check < 10 and body[0] != "0":
            return body + str(check)


def pl_pesel(rng: random.Random) -> str:
    year, month, day = rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28)
    month_code = month + (20 if year >= 2000 else 0)
    body = f"{year % 100:02d}{month_code:02d}{day:02d}{_digits(rng, 4)}"
    return body + pesel.calc_check_digit(body)


def de_idnr(rng: random.Random) -> str:
    digits = rng.sample(string.digits, 9)  # one digit missing, one then doubled: the IdNr rule
    digits.append(rng.choice(digits))
    while True:
        rng.shuffle(digits)
        if digits[0] != "0":
            break
    body = "".join(digits)
    from stdnum.iso7064 import mod_11_10

    return body + mod_11_10.calc_check_digit(body)


def fr_nir(rng: random.Random) -> str:
    department = rng.choice([f"{d:02d}" for d in range(1, 96) if d != 20])
    body = f"{rng.randint(1, 2)}{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{department}{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
    return body + nir.calc_check_digits(body)


def se_personnummer(rng: random.Random) -> str:
    body = f"{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{_digits(rng, 3)}"
    value = _luhn_complete(body)
    return f"{value[:6]}-{value[6:]}"


def es_dni(rng: random.Random) -> str:
    body = _digits(rng, 8)
    return body + dni.calc_check_digit(body)


def es_nie(rng: random.Random) -> str:
    body = rng.choice("XYZ") + _digits(rng, 7)
    return body + nie.calc_check_digit(body)


def it_codice_fiscale(rng: random.Random) -> str:
    upper = string.ascii_uppercase
    body = ("".join(rng.choice(upper) for _ in range(6)) + _digits(rng, 2) + rng.choice("ABCDEHLMPRST")
            + f"{rng.choice([*range(1, 29), *range(41, 69)]):02d}" + rng.choice(upper) + _digits(rng, 3))
    return body + codicefiscale.calc_check_digit(body)


def email(rng: random.Random) -> str:
    local = rng.choice(["john.doe", "maria", "k.nowak", "jean-luc", "anna_b", "x.y+tag"]) + _digits(rng, 2)
    domain = rng.choice(["example.com", "mail.example.org", "post.example.de", "company.co.uk"])
    return f"{local}@{domain}"


def phone(rng: random.Random) -> str:
    """A number ``phonenumbers`` accepts as valid, in international format."""
    while True:
        value = _phone_candidate(rng)
        if phonenumbers.is_valid_number(phonenumbers.parse(value)):
            return value


def _phone_candidate(rng: random.Random) -> str:
    return rng.choice([
        f"+44 20 7946 {rng.randint(0, 9999):04d}",
        f"+1 415 555 {rng.randint(0, 9999):04d}".replace("555", str(rng.randint(200, 999))),
        f"+49 30 {rng.randint(1000000, 9999999)}",
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+34 6{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
        f"+48 5{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
    ])


def ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return "2001:db8:" + ":".join(groups[2:])


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "card": card, "iban": iban, "email": email, "phone": phone, "ipv4": ipv4, "ipv6": ipv6,
    "us_ssn": us_ssn, "gb_nhs": gb_nhs, "nl_bsn": nl_bsn, "pl_pesel": pl_pesel, "de_idnr": de_idnr,
    "fr_nir": fr_nir, "se_personnummer": se_personnummer, "es_dni": es_dni, "es_nie": es_nie,
    "it_codice_fiscale": it_codice_fiscale,
}

# Sentences as people write them; weak-checksum ids carry their usual label.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "card": ("Please charge card {v} today.", "cc: {v}", "{v}", "paid with {v} exp 12/27"),
    "iban": ("Transfer to IBAN {v} please", "iban={v}", "Konto: {v}."),
    "email": ("Contact me at {v}.", "from: {v}", "<{v}>"),
    "phone": ("Call me on {v} tomorrow", "tel: {v}", "mobile {v}"),
    "ipv4": ("login from {v} failed", "client_ip={v}"),
    "ipv6": ("login from {v} failed", "addr {v}"),
    "us_ssn": ("SSN: {v}", "my social security number is {v}"),
    "gb_nhs": ("NHS number {v}", "nhs no: {v}"),
    "nl_bsn": ("BSN {v}", "burgerservicenummer: {v}"),
    "pl_pesel": ("PESEL {v}", "nr pesel: {v}"),
    "de_idnr": ("Steuer-ID: {v}", "IdNr {v}"),
    "fr_nir": ("NIR {v}", "numero de securite sociale {v}"),
    "se_personnummer": ("personnummer {v}", "pnr: {v}"),
    "es_dni": ("DNI {v}", "documento {v}"),
    "es_nie": ("NIE: {v}", "nie {v}"),
    "it_codice_fiscale": ("codice fiscale {v}", "CF: {v}"),
}

_SEPARATORS = (" ", "-", ".", "/", "\n", " - ", "\r\n")
_INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
_DIGIT_BASES = (0xFF10, 0x0660, 0x0966, 0x1D7CE, 0x0E50, 0x06F0)  # fullwidth, Arabic, Devanagari, ...
_HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і",
               "A": "А", "E": "Е", "O": "О", "P": "Р", "C": "С", "T": "Т", "H": "Н", "K": "К", "B": "В"}


def separators(value: str, rng: random.Random) -> str:
    """Spaces, dots, dashes, slashes or line breaks inside digit runs (and at their edges)."""
    out = []
    for i, ch in enumerate(value):
        out.append(ch)
        nxt = value[i + 1] if i < len(value) - 1 else ""
        if ch.isalnum() and nxt.isalnum() and (ch.isdigit() or nxt.isdigit()) and rng.random() < 0.4:
            out.append(rng.choice(_SEPARATORS))
    return "".join(out)


def invisible(value: str, rng: random.Random) -> str:
    return "".join(ch + (rng.choice(_INVISIBLE) if rng.random() < 0.4 else "") for ch in value)


def unicode_digits(value: str, rng: random.Random) -> str:
    base = rng.choice(_DIGIT_BASES)
    return "".join(chr(base + int(ch)) if ch.isdigit() and rng.random() < 0.7 else ch for ch in value)


def homoglyphs(value: str, rng: random.Random) -> str:
    return "".join(_HOMOGLYPHS.get(ch, ch) if rng.random() < 0.5 else ch for ch in value)


def lowercase(value: str, rng: random.Random) -> str:
    return value.lower()


CHARACTER_EVASIONS = {
    "separators": separators, "invisible": invisible, "unicode_digits": unicode_digits,
    "homoglyphs": homoglyphs, "lowercase": lowercase,
}


def base64_wrap(text: str, rng: random.Random) -> str:
    encoded = base64.b64encode(text.encode()) if rng.random() < 0.5 else base64.urlsafe_b64encode(text.encode())
    return encoded.decode()


def url_wrap(text: str, rng: random.Random) -> str:
    return "".join(f"%{b:02X}" for b in text.encode()) if rng.random() < 0.5 else quote(text, safe="")


def json_escape_wrap(text: str, rng: random.Random) -> str:
    escaped = "".join(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else ch for ch in text)
    return json.dumps({"note": "x"})[:-1] + f', "v": "{escaped}"}}'


ENCODING_EVASIONS = {"base64": base64_wrap, "url": url_wrap, "json_escape": json_escape_wrap}


def evade(value: str, rng: random.Random, kinds: list[str]) -> str:
    """Apply the named evasions to ``value`` in a fixed order: characters first, encodings last."""
    for kind in kinds:
        if kind in CHARACTER_EVASIONS:
            value = CHARACTER_EVASIONS[kind](value, rng)
    for kind in kinds:
        if kind in ENCODING_EVASIONS:
            value = ENCODING_EVASIONS[kind](value, rng)
    return value
