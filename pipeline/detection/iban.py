"""IBANs: country code, per-country length from the registry, BBAN structure and mod 97."""

from __future__ import annotations

import string

import re2
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.checksums import iban_mod97_ok
from pipeline.detection.facts import Gate

# Two letters, two check digits, then up to 32 letters or digits, any of them separated by short
# runs of spaces, dots, dashes or slashes ("DE89 3704 0044 ...", "de89-3704-...").
_SEP = r"[ \t\r\n./-]{0,3}"
_PATTERN = re2.compile(f"(?i)\\b[a-z]{_SEP}[a-z]{_SEP}[0-9]{_SEP}[0-9](?:{_SEP}[a-z0-9]){{8,32}}".encode())
_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NOT_ALNUM = bytes(b for b in range(256) if b not in _ALNUM)
_ALNUM_SET = frozenset(_ALNUM)


def _registry_lengths() -> dict[str, int]:
    """IBAN length per country, read from python-stdnum's copy of the SWIFT registry."""
    lengths = {}
    db = stdnum_iban._ibandb
    for a in string.ascii_uppercase:
        for b in string.ascii_uppercase:
            info = db.info(a + b + "00")[0][1]
            if "bban" in info:
                parts = re2.findall(r"(\d+)!?[nace]", info["bban"])
                lengths[a + b] = 4 + sum(int(p) for p in parts)
    return lengths


IBAN_LENGTHS = _registry_lengths()
# Per country, what stdnum.iban.validate looks up in its registry for every call: the BBAN structure
# and the national check module, if any. Looked up once here (country data, never a number).
_COUNTRIES = {cc: (stdnum_iban._struct_to_re(stdnum_iban._ibandb.info(cc + "00")[0][1]["bban"]),
                   stdnum_iban._get_cc_module(cc))
              for cc in IBAN_LENGTHS}


def iban_valid(compact: str) -> bool:
    """``stdnum.iban.is_valid`` for an upper-case alphanumeric string of its country's length,
    with the registry lookups done once per country instead of once per call."""
    country = _COUNTRIES.get(compact[:2])
    if country is None or not iban_mod97_ok(compact):
        return False
    structure, module = country
    if not structure.match(compact[4:]):
        return False
    try:
        return module is None or bool(module.validate(compact))
    except ValidationError:
        return False


class IbanDetector(PatternDetector):
    name = "iban"
    pattern = _PATTERN
    # Country letters and check digits; confirm() wants the registry length, 15 or more, in alnum.
    gate = Gate(digits=2, letters=2, alnum=min(IBAN_LENGTHS.values()))

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        chars = ctx.data[start:end].translate(None, _NOT_ALNUM).upper().decode("ascii")
        length = IBAN_LENGTHS.get(chars[:2])
        if length is None or len(chars) < length or not iban_valid(chars[:length]):
            return None
        # The view end of the length-th alphanumeric character: right there when the IBAN is
        # written without separators (the usual case), else counted.
        if ctx.data[start : start + length].isalnum():
            return start, start + length
        seen, pos = 0, start
        while seen < length:
            if ctx.data[pos] in _ALNUM_SET:
                seen += 1
            pos += 1
        return start, pos
