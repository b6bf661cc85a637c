"""Encoded tokens worth decoding and rescanning: base64 (standard and URL-safe), %xx URL-encoding and
JSON string escapes (``\\u0034``), plus whole-string JSON documents that carry escapes.

Each decoder returns ``(view_start, view_end, decoded_text)``; the engine rescans the decoded text one
level deeper and, if anything is found, reports the whole encoded token.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

import orjson
import re2

_B64 = re2.compile(rb"[A-Za-z0-9+/_-]{8,}={0,2}")
_PERCENT = re2.compile(rb"[^\s\"'<>]*%[0-9A-Fa-f]{2}[^\s\"'<>]*")
_ESCAPED = re2.compile(rb"[^\s\"']*\\u[0-9A-Fa-f]{4}[^\s\"']*")
_UNICODE_ESCAPE = re2.compile(rb"\\u([0-9A-Fa-f]{4})")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
MIN_DECODED = 4


def _printable_text(raw: bytes) -> str | None:
    """``raw`` as text when it is readable UTF-8 (binary from random tokens is not)."""
    if len(raw) < MIN_DECODED:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Control characters betray binary; invisible format characters do not (they are an evasion).
    controls = sum(ch < " " and ch not in "\t\r\n" or ch == "\x7f" or ch == "\ufffd" for ch in text)
    return text if controls <= 0.05 * len(text) else None


def base64_tokens(data: bytes) -> Iterator[tuple[int, int, str]]:
    for match in _B64.finditer(data):
        token = match.group().rstrip(b"=")
        if len(token) % 4 == 1:
            continue  # never a valid base64 length
        try:
            raw = base64.b64decode(token.translate(_URLSAFE) + b"=" * (-len(token) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        text = _printable_text(raw)
        if text is not None:
            yield match.start(), match.end(), text


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


DECODERS = (json_document, base64_tokens, percent_tokens, escaped_tokens)
