"""The strategy contract, the registry and the helpers every strategy shares.

A strategy registers itself by subclassing :class:`Strategy` with a ``name``; its ``Params`` model is
checked when the policy loads, so an unknown strategy or parameter stops the worker instead of
falling back to a default (presidio's silent ``replace`` fallback is what we avoid).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.keys import KeyRing

_REGISTRY: dict[str, type[Strategy]] = {}


class StrategyError(ValueError):
    """An unknown strategy or bad parameters; names the strategy, the parameter and what was expected."""


class MaskingError(ValueError):
    """A value this strategy cannot mask (e.g. ``generalize`` of a non-date). Callers fail closed.

    The message names the strategy and the value's JSON type, never the value itself.
    """


class StrictParams(BaseModel):
    """Base of every ``Params`` model: unknown keys are errors, parsed params are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoParams(StrictParams):
    """For strategies without parameters."""


class Strategy(ABC):
    """One masking strategy. Subclasses set ``name`` and ``Params`` and implement :meth:`mask`."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return  # an abstract intermediate class
        if name in _REGISTRY:
            raise TypeError(f"masking strategy {name!r} is registered twice")
        _REGISTRY[name] = cls

    def __init__(self, params: BaseModel, keys: KeyRing) -> None:
        self.params = params
        self.key_id: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"

    @abstractmethod
    def mask(self, value: object) -> object:
        """The masked JSON value for ``value``, or ``DROP``."""


def json_type(value: object) -> str:
    """The JSON type name of a value, for error messages that must not carry the value."""
    for kind, name in ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"),
                       (dict, "object"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def scalar_text(value: object) -> str:
    """The string form a text-shaped strategy masks for a scalar: ``true``, ``42``, ``3.5``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise MaskingError(f"cannot take the text of a {json_type(value)}")


def map_leaves(value: object, fn: Callable[[object], object]) -> object:
    """Apply ``fn`` to every non-null scalar inside ``value``, keeping the object/array shape.

    Null carries no personal data, so it stays null; text-shaped strategies use this so an object
    reaching them is masked leaf by leaf rather than passed through.
    """
    if isinstance(value, dict):
        return {k: map_leaves(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_leaves(v, fn) for v in value]
    if value is None:
        return None
    return fn(value)


def canonical_json(value: object) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces); integers beyond 64 bits fall back to ``json``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def registry() -> dict[str, type[Strategy]]:
    return _REGISTRY


def strategy_class(name: str) -> type[Strategy]:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise StrategyError(f"unknown masking strategy {name!r}; expected one of: {known}") from None


def validate_params(name: str, params: object) -> BaseModel:
    """Parse ``params`` into the strategy's model, turning pydantic errors into a :class:`StrategyError`."""
    cls = strategy_class(name)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise StrategyError(f"strategy {name!r}: params must be a mapping, got {json_type(params)}")
    try:
        return cls.Params.model_validate(params)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in err["loc"]) or "(params)"
            problems.append(f"param {where!r}: {err['msg']}")
        raise StrategyError(f"strategy {name!r}: " + "; ".join(problems)) from None
