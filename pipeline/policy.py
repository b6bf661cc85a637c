"""Loading the policy file: YAML in, a validated :class:`schemas.policy.Policy` and its hash out.

Errors name the file, the path inside it and what was expected, e.g.
``policy.yaml: datasets.payments.masking[0].strategy: unknown masking strategy 'mangle'``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from schemas.policy import Policy


_NAMES_PATH = re.compile(r"^datasets\.[a-z][a-z0-9_-]*[.\[][^ ]*: ")


class PolicyError(ValueError):
    """The policy file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    hash: str  # "sha256:<hex>" of the file bytes, stamped on every output and provenance record
    path: Path


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _location(loc: tuple[object, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "model"))
        msg = err["msg"].removeprefix("Value error, ")
        if not loc and _NAMES_PATH.match(msg):  # a cross-field check names the path itself
            lines.append(f"{source}: {msg}")
            continue
        lines.append(f"{source}: {_location(loc)}: {msg}")
    return "\n".join(lines)


def parse_policy(text: bytes, source: str = "<policy>") -> LoadedPolicy:
    """Validate policy bytes; ``source`` names the file in error messages."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError(f"{source}{where}: {problem}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: (top level): expected a mapping with 'region' and 'datasets'")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(exc, source)) from None
    digest = "sha256:" + hashlib.sha256(text).hexdigest()
    return LoadedPolicy(policy=policy, hash=digest, path=Path(source))


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read and validate the policy file at ``path``."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    loaded = parse_policy(text, str(path))
    return LoadedPolicy(policy=loaded.policy, hash=loaded.hash, path=path)
