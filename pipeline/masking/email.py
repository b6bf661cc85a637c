"""``email``: mask the local part with a fixed-length mask and keep the domain (``***@example.com``)."""

from __future__ import annotations

from pydantic import Field

from pipeline.masking.base import StrictParams, Strategy, map_leaves, scalar_text


class EmailParams(StrictParams):
    keep_first: int = Field(default=0, ge=0, le=3)
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    mask_length: int = Field(default=3, ge=1, le=16)  # fixed, so the mask does not leak the length


def mask_email(text: str, p: EmailParams) -> str:
    """``j***@example.com``; a value without a usable ``@`` is masked whole (fail safe)."""
    local, at, domain = text.rpartition("@")
    mask = p.mask_char * p.mask_length
    if not (at and local and domain):
        return mask
    kept = local[: p.keep_first] if len(local) > p.keep_first else ""
    if p.mask_char in kept:
        kept = ""  # already masked: keeping a mask character again would grow the mask
    return f"{kept}{mask}@{domain}"


class Email(Strategy):
    name = "email"
    Params = EmailParams

    def mask(self, value: object) -> object:
        return map_leaves(value, lambda leaf: mask_email(scalar_text(leaf), self.params))
