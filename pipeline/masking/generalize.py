"""``generalize``: coarser values that keep analytical use: dates to a year or month, numbers to
buckets, coordinates to a number of decimals. A value of the wrong shape is a :class:`MaskingError`
(the caller holds the record) rather than passing through."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, model_validator

from pipeline.masking.base import MaskingError, StrictParams, Strategy, json_type, map_leaves

# Policy-side patterns on already-extracted field values, anchored and tiny: stdlib re is safe here.
_ISO_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?)?)?")
_NUMBER = r"-?\d+(?:\.\d+)?"
_RANGE = re.compile(f"({_NUMBER})-({_NUMBER})")

_NEEDS = {"date": "granularity", "number": "bucket", "coordinates": "precision"}


class GeneralizeParams(StrictParams):
    kind: Literal["date", "number", "coordinates"]
    granularity: Literal["year", "month"] | None = None
    bucket: float | None = Field(default=None, gt=0)
    precision: int | None = Field(default=None, ge=0, le=6)

    @model_validator(mode="after")
    def _one_setting_per_kind(self) -> GeneralizeParams:
        for kind, param in _NEEDS.items():
            given = getattr(self, param) is not None
            if kind == self.kind and not given:
                raise ValueError(f"kind {kind!r} needs {param!r}")
            if kind != self.kind and given:
                raise ValueError(f"{param!r} does not apply to kind {self.kind!r}")
        return self


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(round(x, 9))


def generalize_date(value: object, granularity: str) -> str:
    """``2024-03-15T10:00Z`` -> ``2024`` or ``2024-03``; a bare year stays a year."""
    if not isinstance(value, str) or not (m := _ISO_DATE.fullmatch(value)):
        raise MaskingError(f"generalize: expected an ISO-8601 date string, got a {json_type(value)}")
    year, month = m.group(1), m.group(2)
    if month is not None and not 1 <= int(month) <= 12:
        raise MaskingError("generalize: the month of the date is out of range")
    if granularity == "year" or month is None:
        return year
    return f"{year}-{month}"


def generalize_number(value: object, width: float) -> str:
    """``42`` with bucket 10 -> ``"40-50"`` (half-open); an aligned range string stays as it is."""
    if isinstance(value, str) and (m := _RANGE.fullmatch(value)):
        lo, hi = float(m.group(1)), float(m.group(2))
        if math.isclose(hi - lo, width) and math.isclose(lo, math.floor(lo / width) * width):
            return value
    number = _as_number(value)
    lo = math.floor(number / width) * width
    return f"{_fmt(lo)}-{_fmt(lo + width)}"


def _as_number(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and re.fullmatch(_NUMBER, value.strip()):
        return float(value)
    raise MaskingError(f"generalize: expected a finite number, got a {json_type(value)}")


def generalize_coordinate(value: object, precision: int) -> object:
    """Numbers rounded to ``precision`` decimals; ``"48.85,2.35"`` strings rounded part by part."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return ",".join(_fmt(round(_as_number(p), precision)) for p in parts)
    rounded = round(_as_number(value), precision)
    return int(rounded) if precision == 0 else rounded


class Generalize(Strategy):
    """Objects and arrays are generalized leaf by leaf, so ``{"lat": .., "lon": ..}`` and
    ``[lat, lon]`` work for coordinates; null stays null."""

    name = "generalize"
    Params = GeneralizeParams

    def mask(self, value: object) -> object:
        p = self.params
        if p.kind == "date":
            return map_leaves(value, lambda v: generalize_date(v, p.granularity))
        if p.kind == "number":
            return map_leaves(value, lambda v: generalize_number(v, p.bucket))
        return map_leaves(value, lambda v: generalize_coordinate(v, p.precision))
