"""Record contract, hold conditions and residency checks: small pure functions over a parsed record.

Paths here are concrete (``a.b``, ``items[0].b``): a rule reads one value. Wildcards belong to masking.
"""

from __future__ import annotations

import math
import operator
import re
from functools import lru_cache
from typing import Any

from schemas.policy import Condition, RecordSchema, ResidencyRule

MISSING: Any = object()
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def split_path(path: str) -> list[str | int]:
    """``"a.b[2].c"`` -> ``["a", "b", 2, "c"]``."""
    return list(_steps(path))


@lru_cache(maxsize=4096)
def _steps(path: str) -> tuple[str | int, ...]:
    # Rule paths come from the policy, a few dozen per dataset: each is split once, not per record.
    return tuple(int(idx) if idx else name for name, idx in _STEP.findall(path))


def lookup(doc: Any, path: str | list[str | int] | tuple[str | int, ...]) -> Any:
    """The value at ``path`` in ``doc``, or ``MISSING``."""
    steps = _steps(path) if isinstance(path, str) else path
    node = doc
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return MISSING
        elif not isinstance(node, dict) or step not in node:
            return MISSING
        node = node[step]
    return node


def _lookup_names(doc: Any, names: tuple[str, ...]) -> Any:
    """:func:`lookup` for a path of object keys only (``subject.country``): one ``dict.get`` per
    step, without telling list indices from names at every step."""
    node = doc
    for name in names:
        if not isinstance(node, dict):
            return MISSING
        node = node.get(name, MISSING)
        if node is MISSING:
            return MISSING
    return node


def _lookup_for(steps: tuple[str | int, ...]) -> Any:
    """The cheapest lookup that reads ``steps``."""
    return _lookup_names if all(isinstance(step, str) for step in steps) else lookup


def contract_violation(doc: dict[str, Any], schema: RecordSchema) -> str | None:
    """A payload-free description of the first contract violation, or ``None``."""
    return Contract(schema).violation(doc)


class Contract:
    """A record schema compiled once per plan: every path split and every type resolved up front."""

    __slots__ = ("required", "types")

    def __init__(self, schema: RecordSchema) -> None:
        self.required = tuple((path, *_finder(path)) for path in schema.required)
        self.types = tuple((path, *_finder(path), expected, _JSON_TYPES[expected], expected in ("number", "integer"))
                           for path, expected in schema.types.items())

    def violation(self, doc: dict[str, Any]) -> str | None:
        """What :func:`contract_violation` says for the schema this was compiled from."""
        for path, find, steps in self.required:
            if find(doc, steps) is MISSING:
                return f"required field {path!r} is missing"
        for path, find, steps, expected, kinds, numeric in self.types:
            value = find(doc, steps)
            # JSON booleans are not numbers, whatever Python thinks.
            if value is not MISSING and (not isinstance(value, kinds) or (numeric and isinstance(value, bool))):
                return f"field {path!r} should be {expected}"
        return None


def _compare(value: Any, cond: Condition) -> bool:
    op, target = cond.op, cond.value
    if op == "exists":
        return value is not MISSING
    if op == "missing":
        return value is MISSING
    if value is MISSING:
        return False
    if op == "==":
        return value == target
    if op == "!=":
        return value != target
    if op == "in":
        return value in target
    if op == "not_in":
        return value not in target
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        # A comparison against a non-number cannot be decided: treat it as met, so the rule holds
        # the record for a human rather than letting it through (fail closed).
        return True
    return _ORDER[op](value, target)


# The order comparisons by name: only the one asked for is evaluated.
_ORDER = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@lru_cache(maxsize=4096)
def _finder(path: str) -> tuple[Any, tuple[str | int, ...]]:
    """The cheapest lookup for a rule's ``path`` and its steps (rule paths come from the policy)."""
    steps = _steps(path)
    return _lookup_for(steps), steps


def _get(doc: Any, path: str) -> Any:
    """``lookup(doc, path)`` for a policy path, split and classified once."""
    find, steps = _finder(path)
    return find(doc, steps)


def conditions_met(doc: dict[str, Any], conditions: list[Condition]) -> bool:
    return all(_compare(_get(doc, c.field), c) for c in conditions)


def residency_violation(doc: dict[str, Any], rule: ResidencyRule) -> str | None:
    """Why the subject's jurisdiction may not clear here, or ``None``. Never quotes the value."""
    value = _get(doc, rule.field)
    if value is MISSING:
        return f"jurisdiction field {rule.field!r} is missing"
    if not isinstance(value, str):
        return f"jurisdiction field {rule.field!r} is not a string"
    if value.strip().upper() not in rule.allowed:
        return f"jurisdiction in {rule.field!r} is not allowed in this region"
    return None
