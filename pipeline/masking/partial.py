"""``partial``: keep the first and/or last characters, mask the rest (``************1111``)."""

from __future__ import annotations

from pydantic import Field

from pipeline.masking.base import StrictParams, Strategy, map_leaves, scalar_text

# Kept in place when preserve_separators is on, so "4111 1111 1111 1111" keeps its grouping.
_SEPARATORS = frozenset(" \t\r\n-./:()_+,")


class PartialParams(StrictParams):
    keep_first: int = Field(default=0, ge=0)
    keep_last: int = Field(default=4, ge=0)
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    preserve_separators: bool = True


def mask_partially(text: str, p: PartialParams) -> str:
    """Mask ``text`` keeping ``keep_first``/``keep_last`` maskable characters.

    When keeping would reveal every character, everything is masked instead: a short value must not
    pass through whole. The mask character counts as maskable, which makes the strategy idempotent.
    """
    if not p.preserve_separators or _SEPARATORS.isdisjoint(text):
        # Every character is a slot (a card or IBAN written without spaces): slice, no per-char loop.
        keep_first, keep_last, size = p.keep_first, p.keep_last, len(text)
        if keep_first + keep_last >= size:
            return p.mask_char * size
        return text[:keep_first] + p.mask_char * (size - keep_first - keep_last) + text[size - keep_last :]
    chars = list(text)
    if p.preserve_separators:
        slots = [i for i, c in enumerate(chars) if c not in _SEPARATORS]
    else:
        slots = list(range(len(chars)))
    keep_first, keep_last = p.keep_first, p.keep_last
    if keep_first + keep_last >= len(slots):
        keep_first = keep_last = 0
    for i in slots[keep_first : len(slots) - keep_last]:
        chars[i] = p.mask_char
    return "".join(chars)


class Partial(Strategy):
    """Numbers and booleans are masked in their string form; objects leaf by leaf; null stays null."""

    name = "partial"
    Params = PartialParams

    def mask(self, value: object) -> object:
        if isinstance(value, str):  # the usual leaf, without map_leaves' walk
            return mask_partially(value, self.params)
        return map_leaves(value, lambda leaf: mask_partially(scalar_text(leaf), self.params))
