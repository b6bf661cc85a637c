"""deploy/ as a whole: every file parses, is documented in deploy/README.md, and holds no secret;
the Procfile and the docs' links agree with what is there. The per-area checks are in
test_deploy_k8s.py, test_deploy_compose.py and test_deploy_monitoring.py.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
README = DEPLOY / "README.md"
OPERATIONS = ROOT / "docs" / "operations.md"


def files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def rel(path: Path) -> str:
    return str(path.relative_to(DEPLOY))


@pytest.mark.parametrize("path", files(".yaml", ".yml"), ids=rel)
def test_every_yaml_file_parses(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents, f"{rel(path)} is empty"
    assert all(isinstance(doc, dict) for doc in documents)


@pytest.mark.parametrize("path", files(".json"), ids=rel)
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


def test_yaml_keys_are_not_duplicated() -> None:
    """PyYAML keeps the last of two equal keys silently; Kubernetes and Compose may not."""

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
        keys = [loader.construct_object(key) for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"]
        repeated = {k for k in keys if keys.count(k) > 1}
        assert not repeated, f"duplicate keys {repeated} at line {node.start_mark.line + 1}"
        return loader.construct_mapping(node)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    for path in files(".yaml", ".yml"):
        try:
            list(yaml.load_all(path.read_text(), Loader=Strict))  # noqa: S506 - a SafeLoader subclass
        except AssertionError as exc:
            pytest.fail(f"{rel(path)}: {exc}")


def test_every_file_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    for path in files(""):
        if path == README:
            continue
        name = rel(path)
        # Overlay files are listed once per overlay directory.
        listed = name in readme or (path.parent.parent.name == "overlays" and path.name in readme)
        assert listed, f"deploy/README.md does not mention {name}"


def looks_like_a_secret(token: str) -> bool:
    """Base64 of random bytes mixes upper case, lower case and digits; hex is long and all hex.
    Paths (a leading slash, dots) and identifiers (never all three classes) are not secrets."""
    if token.startswith("/") or "." in token:
        return False
    mixed = all(re.search(cls, token) for cls in ("[A-Z]", "[a-z]", "[0-9]"))
    return mixed or re.fullmatch(r"[0-9a-f]{32,}", token) is not None


@pytest.mark.parametrize(("token", "secret"), [
    (base64.b64encode(bytes(range(32))).decode(), True),       # an Ed25519 seed, as keygen prints it
    (base64.urlsafe_b64encode(bytes(range(100, 148))).decode(), True),
    (bytes(range(32)).hex(), True),
    ("REPLACE-ME-with-the-output-of-residency-audit-keygen", False),
    ("/spec/triggers/0/metadata/bootstrapServers", False),
    ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", False),
])
def test_the_secret_heuristic(token: str, secret: bool) -> None:
    assert looks_like_a_secret(token) is secret


def test_no_secret_is_committed() -> None:
    private_key = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    for path in files(""):
        text = path.read_text()
        assert not private_key.search(text), f"{rel(path)} holds a private key"
        for token in re.findall(r"[A-Za-z0-9+/=_-]{32,}", text):
            assert not looks_like_a_secret(token), f"{rel(path)}: {token[:6]}... looks like a secret"


def test_the_procfile_runs_the_contracted_worker_command() -> None:
    procfile = (ROOT / "Procfile").read_text()
    (worker,) = [line for line in procfile.splitlines() if line.startswith("worker:")]
    assert worker.split(":", 1)[1].strip().startswith("residency worker --policy ")
    assert worker in README.read_text(), "deploy/README.md should quote the Procfile's worker line"


@pytest.mark.parametrize("doc", [README, OPERATIONS], ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text()
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (doc.parent / path).exists(), f"{doc.name}: broken link {target}"
        elif anchor:
            assert anchor in anchors, f"{doc.name}: no heading for #{anchor}"
