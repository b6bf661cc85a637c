"""Which base64 runs could decode to readable text, told by one RE2 pass instead of one decode per run.

``base64_tokens`` decodes every run of eight or more base64-alphabet bytes and keeps the ones that
decode to valid UTF-8 (see :func:`pipeline.detection.encoded._printable_text`). Ordinary words and
URL paths are such runs (``checkout``, ``/contact/billing``), and decoding each costs microseconds.
Valid UTF-8 starts with a valid UTF-8 prefix, and a run's first four characters fix its first three
decoded bytes, so :data:`READABLE_START` (a run start whose first four characters decode to a valid
UTF-8 prefix, then four more alphabet bytes) is a necessary condition that rejects most words at
once. Continuation bytes are allowed their widest range (0x80-0xBF) everywhere, which only loosens it.
"""

from __future__ import annotations

import re2

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Characters of each 6-bit value, standard and URL-safe ("-" is "+", "_" is "/").
_CHARS = {value: ch + {"+": "-", "/": "_"}.get(ch, "") for value, ch in enumerate(_ALPHABET)}
_RUN_BYTE = rb"[A-Za-z0-9+/_\-]"


def _step(need: int, byte: int) -> int | None:
    """Continuation bytes still needed after ``byte``, or None if it cannot appear in valid UTF-8."""
    if need:
        return need - 1 if 0x80 <= byte <= 0xBF else None
    if byte < 0x80:
        return 0
    if 0xC2 <= byte <= 0xDF:
        return 1
    if 0xE0 <= byte <= 0xEF:
        return 2
    if 0xF0 <= byte <= 0xF4:
        return 3
    return None


def _class(values: set[int]) -> str:
    return "[" + "".join(re2.escape(ch) for v in sorted(values) for ch in _CHARS[v]) + "]"


def _pattern() -> bytes:
    """Base64 characters c0 c1 c2 c3 whose decoded bytes b0 b1 b2 are a valid UTF-8 prefix.

    b0 = v0 << 2 | v1 >> 4, b1 = (v1 & 15) << 4 | v2 >> 2, b2 = (v2 & 3) << 6 | v3: after c1 what
    matters is (continuations needed, low four bits of v1); after c2, (needed, low two bits of v2).
    """
    # For each state after c2, the c3 values that keep the prefix valid.
    last: dict[tuple[int, int], set[int]] = {}
    for need in range(4):
        for low2 in range(4):
            last[(need, low2)] = {v3 for v3 in range(64) if _step(need, low2 << 6 | v3) is not None}
    # For each state after c1, the (c2, c3) continuations, grouped by the state after c2.
    tails: dict[tuple[int, int], str] = {}
    for need in range(4):
        for low4 in range(16):
            by_state: dict[tuple[int, int], set[int]] = {}
            for v2 in range(64):
                after = _step(need, low4 << 4 | v2 >> 2)
                if after is not None and last[(after, v2 & 3)]:
                    by_state.setdefault((after, v2 & 3), set()).add(v2)
            tails[(need, low4)] = "|".join(_class(v2s) + _class(last[state]) for state, v2s in sorted(by_state.items()))
    # The first two characters, grouped by the state after them.
    heads: dict[tuple[int, int], dict[int, set[int]]] = {}
    for v0 in range(64):
        for v1 in range(64):
            need = _step(0, v0 << 2 | v1 >> 4)
            if need is not None and tails[(need, v1 & 15)]:
                heads.setdefault((need, v1 & 15), {}).setdefault(v0, set()).add(v1)
    alternatives = []
    for state, firsts in sorted(heads.items()):
        pairs = "|".join(_class({v0}) + _class(v1s) for v0, v1s in sorted(firsts.items()))
        alternatives.append(f"(?:{pairs})(?:{tails[state]})")
    return "(?:" + "|".join(alternatives) + ")"


# A byte outside the alphabet, then a run of at least eight alphabet bytes whose first four decode
# to a valid UTF-8 prefix. Views are searched with a NUL before them, so a run at a view's start
# has its outside byte too.
READABLE_START = re2.compile(rb"[^A-Za-z0-9+/_\-]" + _pattern().encode() + _RUN_BYTE + b"{4}")
