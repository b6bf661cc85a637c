"""IBANs: country code, per-country length from the registry, BBAN structure and mod 97."""

from __future__ import annotations

import string

import re2
from stdnum import iban as stdnum_iban

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.checksums import iban_mod97_ok
from pipeline.detection.facts import Gate

# Two letters, two check digits, then up to 32 letters or digits, any of them separated by short
# runs of spaces, dots, dashes or slashes ("DE89 3704 0044 ...", "de89-3704-...").
_SEP = r"[ \t\r\n./-]{0,3}"
_PATTERN = re2.compile(f"(?i)\\b[a-z]{_SEP}[a-z]{_SEP}[0-9]{_SEP}[0-9](?:{_SEP}[a-z0-9]){{8,32}}".encode())
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


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


class IbanDetector(PatternDetector):
    name = "iban"
    pattern = _PATTERN
    # Country letters and check digits; confirm() wants the registry length, 15 or more, in alnum.
    gate = Gate(digits=2, letters=2, alnum=min(IBAN_LENGTHS.values()))

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        chars, positions = [], []
        for i in range(start, end):
            byte = ctx.data[i]
            if byte in _ALNUM:
                chars.append(chr(byte).upper())
                positions.append(i)
        length = IBAN_LENGTHS.get("".join(chars[:2]))
        if length is None or len(chars) < length:
            return None
        compact = "".join(chars[:length])
        if not (iban_mod97_ok(compact) and stdnum_iban.is_valid(compact)):
            return None
        return start, positions[length - 1] + 1
