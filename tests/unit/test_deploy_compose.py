"""deploy/compose: the Compose file validates against the compose-spec schema (shipped in the
``check-jsonschema`` wheel) and hangs together (images, builds, mounts, health checks, start order);
the Dockerfile builds what the worker needs; the dev-secrets script writes secrets the worker accepts.
No Docker engine is needed: everything is checked statically.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import re
import stat
from pathlib import Path

import pytest
import yaml

from pipeline.policy import load_policy
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
POLICY_IN_CONTAINER = "/etc/residency/policy.yaml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (short syntax, relative sources)."""
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def test_the_compose_file_validates_against_the_compose_spec() -> None:
    import check_jsonschema  # noqa: F401 - ships the compose-spec schema
    import jsonschema as jsonschema
    schema_file = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(schema)  # its $schema URI lacks the "#" jsonschema looks up
    errors = sorted(validator.iter_errors(compose()), key=str)
    assert not errors, f"{errors[0].message} at {list(errors[0].absolute_path)}"


def test_every_service_has_a_pinned_image_or_a_build() -> None:
    for name, service in services().items():
        assert "image" in service or "build" in service, name
        image = service.get("image", "")
        if "build" in service:
            build = service["build"]
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        else:
            assert re.fullmatch(r"[a-z0-9./-]+:v?[0-9][A-Za-z0-9.+-]*", image), f"{name}: pin a version: {image}"


def test_start_order_waits_on_health_and_one_shot_jobs() -> None:
    all_services = services()
    for name, service in all_services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in all_services[target], f"{target} has no healthcheck for {name} to wait on"
            if condition == "service_completed_successfully":
                assert all_services[target].get("restart") == "no", f"{target} is not a one-shot job"
    worker = all_services["worker"]["depends_on"]
    assert worker["topics"]["condition"] == "service_completed_successfully"
    assert worker["secrets"]["condition"] == "service_completed_successfully"
    assert all_services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for long_running in ("kafka", "worker", "prometheus", "grafana"):
        assert "healthcheck" in all_services[long_running], long_running


def test_mounted_files_exist_and_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes", {}))
    for name, service in services().items():
        for source, _ in bind_mounts(service):
            assert (COMPOSE_DIR / source).exists(), f"{name}: {source} does not exist"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_ports_bind_to_loopback_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} would listen on every interface"


def test_dollar_signs_are_escaped_for_compose_interpolation() -> None:
    unescaped = re.findall(r"\$(?!\{)[^\n]{0,20}", COMPOSE_FILE.read_text().replace("$$", ""))
    assert not unescaped, f"Compose would interpolate these: {unescaped}"


def test_the_worker_gets_its_policy_region_and_settings() -> None:
    all_services = services()
    worker = all_services["worker"]
    env = worker["environment"]
    known = {f"RESIDENCY_{name.upper()}" for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
    assert set(env) <= known, f"settings the worker does not read: {sorted(set(env) - known)}"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "PLAINTEXT://kafka:9092" in all_services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert env["RESIDENCY_WEB_BIND"] == "0.0.0.0"
    mounts = dict((target, source) for source, target in bind_mounts(worker))
    policy = load_policy(COMPOSE_DIR / mounts[env["RESIDENCY_POLICY"]]).policy
    assert policy.region == env["RESIDENCY_REGION"]
    assert "residency worker --policy " + env["RESIDENCY_POLICY"] in worker["command"][0]
    assert "RESIDENCY_AUDIT_SIGNING_KEY" in worker["command"][0]
    assert "/health/ready" in " ".join(worker["healthcheck"]["test"])
    assert f"{env['RESIDENCY_WEB_PORT']}:{env['RESIDENCY_WEB_PORT']}" in worker["ports"][0]


def test_topics_are_provisioned_from_the_same_policy_before_the_worker_starts() -> None:
    all_services = services()
    topics = all_services["topics"]
    assert topics["command"] == ["topics", "apply", "--policy", POLICY_IN_CONTAINER]
    for name in ("topics", "worker", "secrets"):
        assert dict((t, s) for s, t in bind_mounts(all_services[name]))[POLICY_IN_CONTAINER] == \
            "../../pipeline/examples/eu-policy.yaml", name
    assert all_services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


# ---- Dockerfile -----------------------------------------------------------------------------------

def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_installs_the_project_and_runs_the_worker_unprivileged() -> None:
    steps = instructions()
    bases = [args.split()[0] for op, args in steps if op == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11[-.a-z0-9]*", b) for b in bases), bases
    (user,) = [args for op, args in steps if op == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert any(op == "RUN" and "pip install ." in args for op, args in steps)
    entrypoint = [json.loads(args) for op, args in steps if op == "ENTRYPOINT"][-1]
    cmd = [json.loads(args) for op, args in steps if op == "CMD"][-1]
    assert entrypoint + cmd == ["residency", "worker", "--policy", POLICY_IN_CONTAINER]
    assert ("EXPOSE", "6066") in steps


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    included = {line[1:] for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the context should start from nothing"
    copied = []
    for op, args in instructions():
        if op == "COPY" and not args.startswith("--from"):
            copied += args.split()[:-1]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source in included, f"{source} is copied but excluded from the build context"
    # What `pip install .` reads besides the packages.
    readme = re.search(r'^readme = "(.+)"', (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)
    assert readme and readme.group(1) in copied


# ---- dev-secrets.py -------------------------------------------------------------------------------

def load_dev_secrets():  # noqa: ANN201 - the module
    spec = importlib.util.spec_from_file_location("dev_secrets", COMPOSE_DIR / "dev-secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dev_secrets_are_accepted_by_the_worker_and_kept_on_rerun(tmp_path: Path) -> None:
    from pipeline.audit import load_signing_key

    dev_secrets = load_dev_secrets()
    policy = ROOT / "pipeline" / "examples" / "eu-policy.yaml"
    written = dev_secrets.write_dev_secrets(policy, tmp_path)
    assert "audit-signing.key" in written
    settings = Settings(keys_file=tmp_path / "keys.json",
                        audit_signing_key=(tmp_path / "audit-signing.key").read_text())
    ring = settings.key_ring()
    assert set(ring.ids) == {key.id for key in load_policy(policy).policy.keys}
    load_signing_key(settings.audit_signing_key)
    for name in ("keys.json", "audit-signing.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    before = (tmp_path / "keys.json").read_text(), (tmp_path / "audit-signing.key").read_text()
    assert dev_secrets.write_dev_secrets(policy, tmp_path) == []
    assert ((tmp_path / "keys.json").read_text(), (tmp_path / "audit-signing.key").read_text()) == before
