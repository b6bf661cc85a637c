"""``tokenize``: deterministic, reversible only inside the region (with the key), format-preserving
where the shape matters.

* digit strings (cards, phone numbers, ids; separators kept in place) -> FF3-1 over the digits;
  with ``preserve_luhn`` the token passes Luhn exactly when the input did, so a card stays card-shaped
  for downstream validators and reverses exactly.
* short alphanumeric strings (4..32 letters/digits, separators kept) -> FF3-1 over base 62.
* anything else (long text, numbers, booleans) -> ``tok:<key_id>:<base64url>``, AES-SIV: deterministic,
  authenticated and clearly marked. Objects are tokenized leaf by leaf; null stays null.

:func:`detokenize` inverts all three given the same parameters and key ring.
"""

from __future__ import annotations

import base64

import json
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from ff3 import FF3Cipher
from pydantic import Field

from pipeline.keys import KeyRing
from pipeline.masking.base import MaskingError, StrictParams, Strategy, canonical_json, map_leaves

_DIGITS = frozenset("0123456789")
_ALNUM = frozenset(FF3Cipher.BASE62)
_NUMERIC_SEPARATORS = frozenset(" -./()+")
_ALNUM_SEPARATORS = frozenset(" -./_@+")
_NUMERIC_LEN = (6, 56)  # FF3-1 domain bounds for radix 10 (10^6 >= 1e6; 2*floor(96/log2 10))
_ALNUM_LEN = (4, 32)  # and for radix 62
ENVELOPE = "tok:"


class TokenizeParams(StrictParams):
    key: str = Field(min_length=1)
    preserve_luhn: bool = True
    context: str = ""  # domain separation: the same input tokenizes differently per context


def luhn_check_digit(body: str) -> int:
    """The digit that, appended to ``body``, makes it pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


class _Codec:
    """The ciphers for one key and context, shared by tokenize and detokenize."""

    def __init__(self, keys: KeyRing, key_id: str, params: TokenizeParams) -> None:
        ctx = params.context
        key = keys.derive(key_id, f"ff3-1:{ctx}", 32).hex()
        tweak = keys.derive(key_id, f"ff3-1-tweak:{ctx}", 7).hex()
        self.key_id, self.preserve_luhn = key_id, params.preserve_luhn
        self.numeric = FF3Cipher(key, tweak, radix=10)
        self.alnum = FF3Cipher.withCustomAlphabet(key, tweak, FF3Cipher.BASE62)
        self.siv = AESSIV(keys.derive(key_id, f"aes-siv:{ctx}", 64))
        self.aad = [f"residency:tok:v1:{key_id}:{ctx}".encode()]

    def mode(self, text: str) -> str:
        digits = sum(c in _DIGITS for c in text)
        others = set(text) - _DIGITS
        if others <= _NUMERIC_SEPARATORS and _NUMERIC_LEN[0] <= digits <= _NUMERIC_LEN[1]:
            return "numeric"
        alnum = sum(c in _ALNUM for c in text)
        has_letter = any(c in _ALNUM and c not in _DIGITS for c in text)  # alnum_fpe's walk needs one
        if has_letter and set(text) - _ALNUM <= _ALNUM_SEPARATORS and _ALNUM_LEN[0] <= alnum <= _ALNUM_LEN[1]:
            return "alnum"
        return "envelope"

    def numeric_fpe(self, digits: str, encrypt: bool) -> str:
        op = self.numeric.encrypt if encrypt else self.numeric.decrypt
        if not (self.preserve_luhn and len(digits) > _NUMERIC_LEN[0]):
            return op(digits)
        # Encrypt the body, then carry the input's Luhn offset over to the output's check digit:
        # Luhn-valid in, Luhn-valid out, and the offset makes it exactly reversible.
        body, check = digits[:-1], int(digits[-1])
        out = op(body)
        offset = (check - luhn_check_digit(body)) % 10
        return out + str((luhn_check_digit(out) + offset) % 10)

    def alnum_fpe(self, chars: str, encrypt: bool) -> str:
        # Cycle-walk: an alnum-mode input always holds a letter, so a token of digits only (which
        # detokenize would read as numeric) is encrypted again; decryption walks back the same way.
        op = self.alnum.encrypt if encrypt else self.alnum.decrypt
        out = op(chars)
        while set(out) <= _DIGITS:
            out = op(out)
        return out

    def envelope(self, value: object) -> str:
        sealed = self.siv.encrypt(canonical_json(value), self.aad)
        return f"{ENVELOPE}{self.key_id}:" + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open_envelope(self, token: str) -> object:
        body = token[len(ENVELOPE) + len(self.key_id) + 1:]
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return json.loads(self.siv.decrypt(sealed, self.aad))
        except (ValueError, InvalidTag):
            raise MaskingError(f"detokenize: token is not valid under key {self.key_id!r}") from None

    def apply(self, value: object, encrypt: bool) -> object:
        if not isinstance(value, str):
            if encrypt:
                return self.envelope(value)
            raise MaskingError("detokenize: tokens are strings")
        if not encrypt and value.startswith(f"{ENVELOPE}{self.key_id}:"):
            return self.open_envelope(value)
        mode = self.mode(value)
        if mode == "envelope":
            if encrypt:
                return self.envelope(value)
            raise MaskingError("detokenize: value has neither a token shape nor an envelope")
        alphabet = _DIGITS if mode == "numeric" else _ALNUM
        picked = "".join(c for c in value if c in alphabet)
        fpe = self.numeric_fpe if mode == "numeric" else self.alnum_fpe
        out = iter(fpe(picked, encrypt))
        return "".join(next(out) if c in alphabet else c for c in value)


class Tokenize(Strategy):
    name = "tokenize"
    Params = TokenizeParams

    def __init__(self, params: TokenizeParams, keys: KeyRing) -> None:
        super().__init__(params, keys)
        self.key_id = params.key
        self._codec = _Codec(keys, params.key, params)

    def mask(self, value: object) -> object:
        return map_leaves(value, lambda leaf: self._codec.apply(leaf, encrypt=True))

    def detokenize(self, value: object) -> object:
        """The original value of a token produced by this strategy (leaf by leaf for objects)."""
        return map_leaves(value, lambda leaf: self._codec.apply(leaf, encrypt=False))


def detokenize(value: object, params: dict | TokenizeParams, keys: KeyRing) -> object:
    """Reverse ``tokenize`` with the same parameters; only a holder of the region's key can."""
    if not isinstance(params, TokenizeParams):
        params = TokenizeParams.model_validate(params)
    return Tokenize(params, keys).detokenize(value)
