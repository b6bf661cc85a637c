"""Encoded tokens worth decoding and rescanning: base64 (standard and URL-safe), %xx URL-encoding and
JSON string escapes (``\\u0034``), plus whole-string JSON documents that carry escapes.

Each decoder returns ``(view_start, view_end, decoded_text)``; the engine rescans the decoded text one
level deeper and, if anything is found, reports the whole encoded token.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterator
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

import orjson
import re2

from pipeline.detection.facts import BASE64_RUNS, Facts
from pipeline.detection.readable import READABLE_START

_PERCENT = re2.compile(rb"[^\s\"'<>]*%[0-9A-Fa-f]{2}[^\s\"'<>]*")
_ESCAPED = re2.compile(rb"[^\s\"']*\\u[0-9A-Fa-f]{4}[^\s\"']*")
_UNICODE_ESCAPE = re2.compile(rb"\\u([0-9A-Fa-f]{4})")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
MIN_DECODED = 4
_READABLE, _UNANCHORED = READABLE_START._regexp, re2._Anchor.UNANCHORED
# Bytes that count as control characters when decoded text is ASCII (see _printable_text).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\r\n") + b"\x7f"


def _printable_text(raw: bytes) -> str | None:
    """``raw`` as text when it is readable UTF-8 (binary from random tokens is not)."""
    if len(raw) < MIN_DECODED:
        return None
    if raw.isascii():  # the common case, counted without a Python loop per character
        controls = len(raw) - len(raw.translate(None, _CONTROL_BYTES))
        return raw.decode("ascii") if controls <= 0.05 * len(raw) else None
    # Decoding with replacement raises no exception (costly, and the usual outcome for random bytes);
    # a replacement character that the bytes do not spell out means they were not UTF-8.
    text = raw.decode("utf-8", "replace")
    if "\ufffd" in text and text.count("\ufffd") != raw.count(b"\xef\xbf\xbd"):
        return None
    # Control characters betray binary; invisible format characters do not (they are an evasion).
    controls = sum(ch < " " and ch not in "\t\r\n" or ch == "\x7f" or ch == "\ufffd" for ch in text)
    return text if controls <= 0.05 * len(text) else None


def base64_tokens(data: bytes) -> Iterator[tuple[int, int, str]]:
    """Every maximal run of 8 or more base64-alphabet bytes (with up to two ``=`` after it, as the
    regex ``[A-Za-z0-9+/_-]{8,}={0,2}`` would match them) that decodes to readable text.

    Only runs whose first four characters decode to a valid UTF-8 prefix (:data:`READABLE_START`,
    one RE2 pass) are decoded: readable text is valid UTF-8, so no other run can decode to it."""
    runs = data.translate(BASE64_RUNS)  # alphabet -> "A", anything else -> " "
    size = len(data)
    padded = b" " + data  # READABLE_START wants the byte before a run; the space stands for the start
    # padded[i + 1] is data[i], so a match at padded index i is a run starting at data index i.
    start = _READABLE.Match(_UNANCHORED, padded, 0, size + 1)[0][0]
    while start >= 0:
        end = runs.find(b" ", start)
        end = size if end == -1 else end
        stop = end
        while stop < size and stop - end < 2 and data[stop] == 61:  # "="
            stop += 1
        text = base64_text(data[start:end])
        if text is not None:
            yield start, stop, text
        start = _READABLE.Match(_UNANCHORED, padded, stop, size + 1)[0][0] if stop < size else -1


def base64_text(token: bytes) -> str | None:
    """The readable text a run of base64-alphabet bytes decodes to, or None."""
    if len(token) % 4 == 1:  # 4n+1 is never a valid base64 length
        return None
    try:
        raw = binascii.a2b_base64(token.translate(_URLSAFE) + b"=" * (-len(token) % 4))
    except binascii.Error:
        return None
    return _printable_text(raw)


def percent_tokens(data: bytes) -> Iterator[tuple[int, int, str]]:
    for match in _PERCENT.finditer(data):
        raw = unquote_to_bytes(match.group().replace(b"+", b" "))
        text = raw.decode("utf-8", "replace")
        yield match.start(), match.end(), text


def _unescape(token: bytes) -> str:
    # Surrogate pairs (\ud83d\ude00) decode through "surrogatepass" and a UTF-16 round trip.
    text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)).encode("utf-8", "surrogatepass"), token)
    return text.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def escaped_tokens(data: bytes) -> Iterator[tuple[int, int, str]]:
    for match in _ESCAPED.finditer(data):
        yield match.start(), match.end(), _unescape(match.group())


def json_document(data: bytes) -> Iterator[tuple[int, int, str]]:
    """A string that is itself a JSON document with escapes: its strings, keys and numbers as lines."""
    stripped = data.strip()
    if b"\\" not in stripped or stripped[:1] not in (b"{", b"[", b'"'):
        return
    try:
        document = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return
    leaves: list[str] = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            leaves.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif node is not None and not isinstance(node, bool):
            leaves.append(str(node))
    yield 0, len(data), "\n".join(leaves)


class Decoder(NamedTuple):
    """A decoder and what a view needs before it can find a token: ``marker`` bytes, or (for base64,
    ``marker`` None) a run of base64-alphabet bytes long enough to decode."""

    decode: Callable[[bytes], Iterator[tuple[int, int, str]]]
    marker: bytes | None

    def possible(self, facts: Facts) -> bool:
        return facts.base64_run() if self.marker is None else self.marker in facts.data


DECODERS = (
    Decoder(json_document, b"\\"),
    Decoder(base64_tokens, None),
    Decoder(percent_tokens, b"%"),
    Decoder(escaped_tokens, b"\\u"),
)
