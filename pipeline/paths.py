"""Field paths over JSON documents (objects and arrays), compiled once when the policy loads.

Grammar, segment by segment, separated by dots::

    name          a key of an object (any characters except ``.[]*"'`` and whitespace)
    ["na.me"]     a quoted key, for names with dots or brackets (header names, odd keys)
    [3] / [-1]    one element of an array (negative counts from the end)
    [*]           every element of an array
    *             every child: each value of an object, each element of an array
    **            zero or more levels of any child, so ``**.email`` finds ``email`` at any depth

Paths are generic over documents: the screening core applies them to a record's value, to its key
when the key is JSON, and to ``{"headers": {...}}`` for headers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["DROP", "FieldPath", "PathError", "compile_path", "format_path"]

_NAME_STOP = frozenset('.[]*"\'') | frozenset(" \t\r\n")


class _Drop:
    """Sentinel a transform function returns to delete the matched key or element."""

    _instance: _Drop | None = None

    def __new__(cls) -> _Drop:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROP"

    def __reduce__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


class PathError(ValueError):
    """A field path expression that does not parse; the message names the expression and the fault."""

    def __init__(self, expr: str, problem: str, position: int | None = None) -> None:
        where = "" if position is None else f" at position {position}"
        super().__init__(f"field path {expr!r}: {problem}{where}")
        self.expr = expr
        self.problem = problem
        self.position = position


@dataclass(frozen=True, slots=True)
class _Seg:
    kind: str  # "key", "index", "any", "any_index", "deep"
    key: str | int | None = None


class _Parser:
    """A small hand-written parser: the grammar is tiny and errors must point at a position."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.pos = 0
        self.segs: list[_Seg] = []

    def fail(self, problem: str) -> PathError:
        return PathError(self.expr, problem, self.pos)

    def parse(self) -> tuple[_Seg, ...]:
        if not self.expr or self.expr.strip() != self.expr:
            raise PathError(self.expr, "must be non-empty and have no surrounding whitespace")
        while True:
            self.segment()
            if self.pos == len(self.expr):
                break
            if self.expr[self.pos] != ".":
                raise self.fail(f"expected '.' or '[' but found {self.expr[self.pos]!r}")
            self.pos += 1
            if self.pos == len(self.expr):
                raise self.fail("ends with '.'; a segment must follow")
        if self.segs[-1].kind == "deep":
            raise PathError(self.expr, "'**' must be followed by a segment, e.g. '**.email'")
        return tuple(self.segs)

    def segment(self) -> None:
        expr, start = self.expr, self.pos
        if expr.startswith("**", start):
            self.pos += 2
            self.segs.append(_Seg("deep"))
            if self.pos < len(expr) and expr[self.pos] not in ".":
                raise self.fail("'**' must stand alone between dots")
            return
        if expr.startswith("*", start):
            self.pos += 1
            self.segs.append(_Seg("any"))
        elif start < len(expr) and expr[start] != "[":
            while self.pos < len(expr) and expr[self.pos] not in _NAME_STOP:
                self.pos += 1
            if self.pos == start:
                raise self.fail("empty segment name")
            self.segs.append(_Seg("key", expr[start : self.pos]))
        elif start == len(expr):
            raise self.fail("empty segment name")
        while self.pos < len(expr) and expr[self.pos] == "[":
            self.bracket()

    def bracket(self) -> None:
        expr = self.expr
        close = expr.find("]", self.pos)
        if close < 0:
            raise self.fail("'[' is never closed")
        inner = expr[self.pos + 1 : close]
        if inner == "*":
            self.segs.append(_Seg("any_index"))
        elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
            self.segs.append(_Seg("key", inner[1:-1]))
        else:
            try:
                self.segs.append(_Seg("index", int(inner, 10)))
            except ValueError:
                raise self.fail(
                    f"bracket holds {inner!r}; expected [*], an integer index or a quoted key"
                ) from None
        self.pos = close + 1


def format_path(parts: tuple[str | int, ...]) -> str:
    """The concrete path of a matched value, e.g. ``items[2].card`` or ``headers["x.id"]``."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part and not (_NAME_STOP & set(part)):
            out.append(f".{part}" if out else part)
        else:
            out.append('["' + part.replace('"', '\\"') + '"]')
    return "".join(out)


def _children(node: object) -> Iterator[tuple[str | int, object]]:
    if isinstance(node, dict):
        yield from node.items()
    elif isinstance(node, list):
        yield from enumerate(node)


class FieldPath:
    """A compiled path; :meth:`transform` rewrites matches in place, :meth:`find` only reads."""

    __slots__ = ("expr", "_segs")

    def __init__(self, expr: str, segs: tuple[_Seg, ...]) -> None:
        self.expr = expr
        self._segs = segs

    def __repr__(self) -> str:
        return f"FieldPath({self.expr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldPath) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(self.expr)

    def _matches(self, doc: object) -> list[tuple[Any, str | int, tuple[str | int, ...]]]:
        """(container, key, concrete parts) of every match, each once; iterative, so deep docs are safe."""
        segs, last = self._segs, len(self._segs) - 1
        found: dict[tuple[str | int, ...], tuple[Any, str | int]] = {}
        seen: set[tuple[int, int, tuple[str | int, ...]]] = set()
        stack: list[tuple[object, int, tuple[str | int, ...]]] = [(doc, 0, ())]
        while stack:
            node, i, parts = stack.pop()
            seg = segs[i]
            if seg.kind == "deep":
                # '**' either stops here (zero levels) or descends one more level and stays active.
                state = (id(node), i, parts)
                if state in seen:
                    continue
                seen.add(state)
                stack.append((node, i + 1, parts))
                stack.extend((child, i, parts + (k,)) for k, child in _children(node))
                continue
            for key, child in self._step(node, seg):
                here = parts + (key,)
                if i == last:
                    found.setdefault(here, (node, key))
                else:
                    stack.append((child, i + 1, here))
        return [(c, k, p) for p, (c, k) in found.items()]

    @staticmethod
    def _step(node: object, seg: _Seg) -> Iterator[tuple[str | int, object]]:
        if seg.kind == "key":
            if isinstance(node, dict) and seg.key in node:
                yield seg.key, node[seg.key]  # type: ignore[index, misc]
        elif seg.kind == "index":
            if isinstance(node, list) and -len(node) <= seg.key < len(node):  # type: ignore[operator]
                index = seg.key % len(node)  # type: ignore[operator]
                yield index, node[index]
        elif seg.kind == "any_index":
            if isinstance(node, list):
                yield from enumerate(node)
        else:
            yield from _children(node)

    def find(self, doc: object) -> list[tuple[str, object]]:
        """Every (concrete path, value) the path matches, in a stable order; the document is not changed."""
        matches = sorted(self._matches(doc), key=lambda m: _order_key(m[2]))
        return [(format_path(parts), container[key]) for container, key, parts in matches]

    def transform(self, doc: object, fn: Callable[[str, object], object]) -> int:
        """Replace every match with ``fn(concrete_path, value)`` in place; ``DROP`` deletes it.

        Deepest matches go first, so a function applied to an outer object sees its inner matches
        already transformed, and deleting array elements back to front keeps later indices valid.
        Returns how many values matched.
        """
        matches = self._matches(doc)
        matches.sort(key=lambda m: (len(m[2]), m[1] if isinstance(m[1], int) else -1), reverse=True)
        for container, key, parts in matches:
            result = fn(format_path(parts), container[key])
            if result is DROP:
                del container[key]
            else:
                container[key] = result
        return len(matches)


def _order_key(parts: tuple[str | int, ...]) -> tuple[tuple[int, str | int], ...]:
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in parts)


def compile_path(expr: str) -> FieldPath:
    """Parse ``expr`` into a :class:`FieldPath`; raises :class:`PathError` naming the fault."""
    if not isinstance(expr, str):
        raise PathError(repr(expr), "a field path must be a string")
    return FieldPath(expr, _Parser(expr).parse())
