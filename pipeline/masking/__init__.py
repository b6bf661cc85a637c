"""Masking strategies, registered by name, one per module (like presidio's operators).

``build_strategy(name, params, keys)`` is what the screening core calls; ``params_model(name)`` lets
policy loading validate parameters before any key is available.
"""

from __future__ import annotations

from pydantic import BaseModel

from pipeline.keys import KeyRing, MissingKeyError
from pipeline.masking import drop, email, encrypt, generalize, hmac_hash, partial, redact, replace, tokenize
from pipeline.masking.base import (
    MaskingError,
    Strategy,
    StrategyError,
    StrictParams,
    registry,
    strategy_class,
    validate_params,
)
from pipeline.masking.encrypt import decrypt
from pipeline.masking.tokenize import detokenize
from pipeline.paths import DROP

__all__ = [
    "DROP",
    "MaskingError",
    "MissingKeyError",
    "Strategy",
    "StrategyError",
    "StrictParams",
    "build_strategy",
    "decrypt",
    "detokenize",
    "params_model",
    "strategy_names",
]

_MODULES = (drop, email, encrypt, generalize, hmac_hash, partial, redact, replace, tokenize)


def strategy_names() -> list[str]:
    """Every registered strategy name, sorted."""
    return sorted(registry())


def params_model(name: str) -> type[BaseModel]:
    """The pydantic model of a strategy's parameters; :class:`StrategyError` if the name is unknown."""
    return strategy_class(name).Params


def build_strategy(name: str, params: dict | None, keys: KeyRing) -> Strategy:
    """A ready strategy: params validated, keys derived (``MissingKeyError`` if a key id is unknown)."""
    model = validate_params(name, params)
    return strategy_class(name)(model, keys)
