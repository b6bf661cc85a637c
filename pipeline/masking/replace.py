"""``replace``: the whole value becomes a configured constant JSON value (e.g. ``0`` or ``"n/a"``)."""

from __future__ import annotations

import copy

from pydantic import JsonValue

from pipeline.masking.base import StrictParams, Strategy


class ReplaceParams(StrictParams):
    value: JsonValue  # required: a replacement nobody chose would be a silent default


class Replace(Strategy):
    name = "replace"
    Params = ReplaceParams

    def mask(self, value: object) -> object:
        return copy.deepcopy(self.params.value)
