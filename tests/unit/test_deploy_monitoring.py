"""Alert rules, Prometheus config and the Grafana dashboard under deploy/: every query parses as
PromQL (``promql-parser``, a real parser) and names only metrics and labels the worker exports, plus
the standard kube-state-metrics and kafka-exporter ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yaml"
DASHBOARD = DEPLOY / "grafana" / "residency-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# The metrics contract of issue #9: base name -> (type, labels). Counters are exported with `_total`.
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "residency_events": ("counter", frozenset({"dataset", "outcome"})),
    "residency_findings": ("counter", frozenset({"dataset", "type"})),
    "residency_masked_fields": ("counter", frozenset({"dataset", "strategy"})),
    "residency_reasons": ("counter", frozenset({"dataset", "outcome", "reason"})),
    "residency_held_backlog": ("gauge", frozenset()),
    "residency_hold_age_seconds": ("gauge", frozenset()),
    "residency_hold_ttl_seconds": ("gauge", frozenset()),
    "residency_approval_latency_seconds": ("histogram", frozenset()),
    "residency_screen_latency_seconds": ("histogram", frozenset()),
    "residency_ingress_to_cleared_seconds": ("histogram", frozenset()),
    "residency_event_loop_lag_seconds": ("histogram", frozenset()),
    "residency_audit_checkpoint_age_seconds": ("gauge", frozenset()),
    "residency_consumer_lag": ("gauge", frozenset({"topic", "partition"})),
    "residency_audit_verify_failures": ("counter", frozenset({"kind"})),
    "residency_audit_verified_entries": ("counter", frozenset()),
    "residency_disallowed_broker_rack": ("gauge", frozenset()),
    "residency_ready": ("gauge", frozenset()),
}
# Labels Prometheus attaches to every scraped series (target labels; `region` by our scrape configs).
TARGET_LABELS = frozenset({"job", "instance", "region", "namespace", "pod", "service", "container"})
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created")}
# Standard series from Prometheus itself, kube-state-metrics and kafka-exporter.
STANDARD = re.compile(r"^(up|scrape_[a-z_]+|kube_[a-z0-9_]+|kafka_[a-z0-9_]+)$")
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def exported() -> dict[str, frozenset[str]]:
    """Every series name the worker exports, with the labels it may carry."""
    names: dict[str, frozenset[str]] = {}
    for base, (kind, labels) in CONTRACT.items():
        for suffix in SUFFIXES[kind]:
            names[base + suffix] = labels | TARGET_LABELS | ({"le"} if suffix == "_bucket" else set())
    return names


EXPORTED = exported()


def selectors(expr: str) -> Iterator[tuple[str, list[str]]]:
    """(metric name, matcher label names) of every vector selector in ``expr``; fails if it does not parse."""
    import promql_parser as promql_parser
    try:
        tree = promql_parser.parse(expr)
    except ValueError as exc:
        pytest.fail(f"does not parse as PromQL ({exc}): {expr}")
    found: list[tuple[str, list[str]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, [m.name for m in node.matchers.matchers]))

    promql_parser.walk(tree, visit)
    return iter(found)


def grouping_labels(expr: str) -> set[str]:
    import promql_parser as promql_parser
    labels: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            if node.modifier.type == promql_parser.AggModifierType.By:
                labels.update(node.modifier.labels)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return labels


def check_query(expr: str, where: str) -> set[str]:
    """Assert that ``expr`` parses and names only known series and labels; return the names."""
    names = set()
    for name, labels in selectors(expr):
        assert name, f"{where}: a selector without a metric name: {expr}"
        names.add(name)
        if STANDARD.match(name):
            continue
        assert name in EXPORTED, f"{where}: unknown metric {name!r} in {expr}"
        unknown = set(labels) - EXPORTED[name]
        assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"
    return names


# ---- alert rules ----------------------------------------------------------------------------------

def rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rule_groups_are_well_formed() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    group_names = [g["name"] for g in doc["groups"]]
    assert len(group_names) == len(set(group_names))
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)), "alert names repeat"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_each_alert_rule_is_complete_and_queries_known_metrics(rule: dict) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
    assert re.fullmatch(r"Residency[A-Z][A-Za-z]+", rule["alert"])
    assert DURATION.match(str(rule["for"])), rule["for"]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    check_query(rule["expr"], rule["alert"])
    # Annotations may only use labels the expression's result keeps.
    used = set(re.findall(r"\$labels\.([a-zA-Z_]+)", " ".join(annotations.values())))
    kept = grouping_labels(rule["expr"]) or set(TARGET_LABELS)
    assert used <= kept, f"{rule['alert']}: annotations use {sorted(used - kept)}, dropped by the aggregation"


def test_alerts_cover_the_failure_modes_of_issue_9() -> None:
    used = set()
    for rule in rules():
        used |= check_query(rule["expr"], rule["alert"])
    for required in ["residency_held_backlog", "residency_hold_age_seconds", "residency_hold_ttl_seconds",
                     "residency_events_total", "residency_consumer_lag",
                     "residency_audit_verify_failures_total", "residency_disallowed_broker_rack",
                     "residency_ready"]:
        assert required in used, f"no alert on {required}"
    deadletter = [r for r in rules() if 'outcome="deadletter"' in r["expr"]]
    assert deadletter, "no alert on the dead-letter rate"


def test_every_runbook_link_points_at_a_heading_of_the_operations_guide() -> None:
    headings = re.findall(r"^#{1,6} (.+)$", OPERATIONS.read_text(), flags=re.MULTILINE)
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    for rule in rules():
        link = rule["annotations"]["runbook_url"]
        path, _, anchor = link.partition("#")
        assert path == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: {link}"


# ---- Prometheus configuration ---------------------------------------------------------------------

def test_prometheus_loads_the_rules_and_scrapes_the_worker_as_job_residency() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yaml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "residency"  # ResidencyWorkerDown selects up{job="residency"}
    assert job["metrics_path"] == "/metrics"
    (static,) = job["static_configs"]
    assert static["targets"] == ["worker:6066"]
    assert "region" in static["labels"]
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "../prometheus/alerts.yaml:/etc/prometheus/alerts.yaml:ro" in mounts
    assert "../prometheus/prometheus.yaml:/etc/prometheus/prometheus.yaml:ro" in mounts


# ---- Grafana --------------------------------------------------------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict) -> list[dict]:
    out = []
    for panel in dash["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "[$" not in expr, f"a range uses an unknown Grafana variable: {expr}"
    return expr


def test_the_dashboard_is_well_formed() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels(dash):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] >= 1 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_every_dashboard_query_parses_and_names_known_metrics() -> None:
    used: set[str] = set()
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            used |= check_query(as_promql(target["expr"]), f"panel {panel['title']!r}")
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), *([a-z_]+)\)", variable["definition"])
        assert match, variable["definition"]
        names = check_query(match.group(1), f"variable {variable['name']}")
        assert match.group(2) in EXPORTED[names.pop()]
    # Everything the worker exports has a panel.
    bases = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert set(CONTRACT) <= bases, f"no panel for {sorted(set(CONTRACT) - bases)}"


def test_every_panel_filters_by_the_region_variable() -> None:
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            for name, labels in selectors(as_promql(target["expr"])):
                if name.startswith("residency_"):
                    assert "region" in labels, f"panel {panel['title']!r}: {name} ignores $region"


def test_grafana_provisioning_matches_the_dashboard_and_compose() -> None:
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and source["isDefault"]
    providers = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "residency.yaml").read_text())
    (provider,) = providers["providers"]
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = f"{provider['options']['path']}/{DASHBOARD.name}"
    assert f"../grafana/{DASHBOARD.name}:{target}:ro" in mounts


# ---- the worker's own registry --------------------------------------------------------------------

def registered() -> dict[str, str]:
    from prometheus_client import CollectorRegistry

    from pipeline.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    return {family.name: family.type for family in registry.collect()}


def test_every_metric_the_worker_registers_is_in_the_contract() -> None:
    for name, kind in registered().items():
        assert name in CONTRACT, f"{name} is exported but neither dashboard nor alerts know it"
        assert CONTRACT[name][0] == kind, f"{name}: {kind}, the contract says {CONTRACT[name][0]}"


# Metrics the dashboard and alerts already use whose features land with later issues. The set may
# only shrink: a name here that the worker registers fails the test below, so it must be removed.
PENDING: set[str] = set()


def test_every_contract_metric_is_registered_by_the_worker_or_pending() -> None:
    have = set(registered())
    assert sorted(set(CONTRACT) - have - PENDING) == []
    assert sorted(PENDING & have) == [], "registered now: remove from PENDING"
