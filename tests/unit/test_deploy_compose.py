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


# ---- commands, ports and the broker's KRaft settings ----------------------------------------------

def residency_argv(service: dict) -> list[str] | None:
    """The ``residency`` command line a service runs (image ENTRYPOINT ["residency"], or a shell script's
    ``exec residency ...``), or None when it runs something else."""
    entrypoint = service.get("entrypoint")
    command = service.get("command", [])
    if entrypoint is None:
        return ["residency", *command]
    if entrypoint == ["/bin/sh", "-c"]:
        (script,) = command
        execs = [line.split()[1:] for line in script.splitlines() if line.strip().startswith("exec ")]
        (argv,) = execs
        return argv if argv[0] == "residency" else None
    return None


def help_flags(*subcommand: str) -> tuple[set[str], str]:
    """Flags and usage text of ``residency <subcommand> --help``, from the real parser in a subprocess."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *subcommand, "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, f"residency {' '.join(subcommand)} --help: {result.stderr}"
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", result.stdout)), result.stdout


def test_the_console_script_is_residency() -> None:
    scripts = re.search(r"\[project\.scripts\]\n(.+?)\n\n", (ROOT / "pyproject.toml").read_text(), re.DOTALL)
    assert scripts and re.search(r'^residency = "pipeline\.cli:main"$', scripts.group(1), re.MULTILINE)


@pytest.mark.parametrize("name", ["topics", "worker"])
def test_each_residency_command_in_compose_exists_with_the_flags_it_passes(name: str) -> None:
    argv = residency_argv(services()[name])
    assert argv and argv[0] == "residency", f"{name} does not run residency: {argv}"
    args = argv[1:]  # every flag compose passes takes a value: `--policy FILE`
    positional = [a for i, a in enumerate(args) if not a.startswith("-") and not (i and args[i - 1].startswith("--"))]
    subcommand = positional[:1]
    flags, usage = help_flags(*subcommand)
    passed = {a.split("=")[0] for a in argv if a.startswith("--")}
    assert passed and passed <= flags, f"{name}: residency {subcommand[0]} has no {sorted(passed - flags)}"
    choices = re.search(r"\{([a-z,]+)\}", usage)
    for value in positional[1:2]:  # e.g. `topics apply`: the action must be one the parser offers
        assert choices and value in choices.group(1).split(","), f"{name}: {value} is not a choice of {subcommand}"
    # The flag values that are files point at files the service mounts.
    mounts = {target for _, target in bind_mounts(services()[name])}
    policy = argv[argv.index("--policy") + 1]
    assert policy in mounts, f"{name}: --policy {policy} is not mounted"


def test_the_secrets_job_runs_dev_secrets_with_flags_it_accepts() -> None:
    service = services()["secrets"]
    assert service["entrypoint"] == ["python", "/opt/dev-secrets.py"]
    assert ("./dev-secrets.py", "/opt/dev-secrets.py") in bind_mounts(service)
    parser_flags = set(re.findall(r'add_argument\("(--[a-z-]+)"', (COMPOSE_DIR / "dev-secrets.py").read_text()))
    command = service["command"]
    assert {a for a in command if a.startswith("--")} == parser_flags
    out = command[command.index("--out") + 1]
    worker_reads = {v for k, v in services()["worker"]["environment"].items() if str(v).startswith(out)}
    script = services()["worker"]["command"][0]
    worker_reads |= set(re.findall(rf"{re.escape(out)}/[\w./-]+", script))
    dev = load_dev_secrets()
    written = {f"{out}/{name}" for name in (dev.KEYS_FILE, dev.SIGNING_KEY_FILE, dev.ATTESTATION_KEY_FILE)}
    written.add(f"{out}/{dev.IDP_DIR}/jwks.json")
    assert worker_reads and worker_reads <= written, f"the worker reads {sorted(worker_reads - written)}, never written"


def test_the_worker_port_healthcheck_and_scrape_target_agree() -> None:
    worker = services()["worker"]
    port = worker["environment"]["RESIDENCY_WEB_PORT"]
    assert ("EXPOSE", port) in instructions()
    assert worker["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"http://127.0.0.1:{port}/health/ready" in " ".join(worker["healthcheck"]["test"])
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yaml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for static in job["static_configs"] for t in static["targets"]]
    assert targets == [f"worker:{port}"], "Prometheus scrapes the worker service on its web port"
    assert Settings(web_port=int(port)).web_port == int(port)


def test_the_kafka_service_has_a_complete_single_node_kraft_configuration() -> None:
    import base64
    import uuid

    kafka = services()["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    # CLUSTER_ID is a base64url UUID (16 bytes, 22 characters), as `kafka-storage.sh random-uuid` makes.
    assert len(env["CLUSTER_ID"]) == 22
    uuid.UUID(bytes=base64.urlsafe_b64decode(env["CLUSTER_ID"] + "=="))
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    listeners = dict(reversed(item.split("://")) for item in env["KAFKA_LISTENERS"].split(","))
    names = {name for name in listeners.values()}
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert names <= protocols.keys(), "every listener needs a security protocol"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in names and env["KAFKA_INTER_BROKER_LISTENER_NAME"] in names
    voter_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == node, "the only voter is this node"
    controller_port = next(address for address, name in listeners.items() if name == controller).rsplit(":", 1)[1]
    assert voter == f"{kafka['hostname']}:{controller_port}"
    advertised = dict(reversed(item.split("://")) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert controller not in advertised.values(), "a controller listener is never advertised"
    assert set(advertised.values()) == names - {controller}
    assert f"PLAINTEXT://{kafka['hostname']}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    host = next(address for address, name in advertised.items() if name == "HOST")
    assert f"{host}:{host.rsplit(':', 1)[1]}" in kafka["ports"], "the host listener is published as advertised"
    for replication in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
                        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"):
        assert env[replication] == "1", f"{replication}: a single broker cannot hold more replicas"
    assert env["KAFKA_LOG_DIRS"] in {v.split(":")[1] for v in kafka["volumes"]}, "the log dir is the data volume"
    assert ":9092" in kafka["healthcheck"]["test"][1]
