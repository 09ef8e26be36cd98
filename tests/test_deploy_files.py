"""deploy/: every file parses, and every file a manifest references exists in the repository.

Docker, Kubernetes and systemd cannot run here, so these tests check what can go wrong without
them: syntax, references to files that were moved or never written, services and images, probe
paths that the daemon serves, and Grafana dashboards whose panels have no query.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = _yaml(DEPLOY / "docker-compose.yml")
    return doc


# -- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_config_scrapes_marginwatch_and_loads_the_rules() -> None:
    cfg = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    assert jobs["marginwatch"]["static_configs"][0]["targets"] == ["marginwatch:9464"]
    assert jobs["marginwatch"]["metrics_path"] == "/metrics"
    # compose mounts deploy/prometheus/rules at /etc/prometheus/rules
    assert cfg["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_rules_cover_every_required_alert_and_each_is_unit_tested() -> None:
    rules = _yaml(DEPLOY / "prometheus" / "rules" / "marginwatch.yml")
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    required = {
        "MarginwatchAccountCritical",
        "MarginwatchAccountLiquidatable",
        "MarginwatchFeedStale",
        "MarginwatchFeedDisconnected",
        "MarginwatchSpoolGrowing",
        "MarginwatchDeliveryFailures",
        "MarginwatchDown",
    }
    assert required <= set(alerts)
    assert alerts["MarginwatchAccountCritical"]["expr"] == "marginwatch_account_alert_level >= 3"
    assert alerts["MarginwatchAccountLiquidatable"]["expr"] == (
        "marginwatch_account_alert_level == 4"
    )
    # Quiet private streams are not stale: staleness is for market feeds only.
    assert alerts["MarginwatchFeedStale"]["expr"] == (
        'marginwatch_feed_last_event_age_seconds{feed=~".*/market.*"} > 60'
    )
    assert alerts["MarginwatchFeedDisconnected"]["expr"] == "marginwatch_feed_connected == 0"
    assert alerts["MarginwatchFeedDisconnected"]["for"] == "2m"
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical", "page"}
        assert rule["annotations"]["summary"]
    tests = _yaml(DEPLOY / "prometheus" / "tests" / "marginwatch_test.yml")
    assert tests["rule_files"] == ["../rules/marginwatch.yml"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    # every alert is tested both firing and not firing
    assert set(alerts) <= fired
    assert set(alerts) <= quiet


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool: make services")
def test_promtool_checks_and_unit_tests_pass() -> None:
    rules = sorted(str(p) for p in (DEPLOY / "prometheus" / "rules").glob("*.yml"))
    tests = sorted(str(p) for p in (DEPLOY / "prometheus" / "tests").glob("*.yml"))
    for argv in (["promtool", "check", "rules", *rules], ["promtool", "test", "rules", *tests]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
        assert done.returncode == 0, done.stdout + done.stderr


# -- Grafana ------------------------------------------------------------------------------------


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows nest their panels
    return out


def test_dashboards_are_the_two_expected_ones() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "marginwatch-operations.json",
        "marginwatch-overview.json",
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_json_is_well_formed(path: Path) -> None:
    dash = json.loads(path.read_text())
    assert dash["uid"] == path.stem
    assert 36 <= dash["schemaVersion"] <= 41
    panels = _panels(dash)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert "datasource" in variables
    queried = [p for p in panels if p["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {panel['title']!r} target without expr"
            assert target["datasource"]["uid"] == "${datasource}"
            # every $variable used is defined (or a Grafana built-in)
            for var in re.findall(r"\$\{?(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), (panel["title"], var)
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24


def test_overview_has_health_thresholds_and_the_required_panels() -> None:
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "marginwatch-overview.json").read_text())
    by_title = {p["title"]: p for p in _panels(dash)}
    health = by_title["Accounts by health (lowest 20)"]
    steps = health["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["color"] for s in steps] == ["red", "orange", "yellow", "green"]
    assert [s["value"] for s in steps[1:]] == [1.05, 1.25, 1.5]
    assert by_title["Alert level timeline"]["type"] == "state-timeline"
    exprs = " ".join(t["expr"] for p in _panels(dash) for t in p.get("targets", []))
    for metric in (
        "marginwatch_account_health",
        "marginwatch_account_margin_ratio",
        "marginwatch_account_liquidation_distance_ratio",
        "marginwatch_account_alert_level",
        "marginwatch_alerts_total",
    ):
        assert metric in exprs


def test_operations_board_covers_feeds_latency_and_delivery() -> None:
    path = DEPLOY / "grafana" / "dashboards" / "marginwatch-operations.json"
    exprs = " ".join(
        t["expr"] for p in _panels(json.loads(path.read_text())) for t in p.get("targets", [])
    )
    for metric in (
        "marginwatch_feed_last_event_age_seconds",
        "marginwatch_feed_reconnects_total",
        "marginwatch_venue_frames_total",
        "marginwatch_venue_frames_rejected_total",
        "marginwatch_tick_to_alert_seconds_bucket",
        "marginwatch_tick_recompute_seconds_bucket",
        "marginwatch_alert_deliveries_total",
        "marginwatch_alert_spool_depth",
    ):
        assert metric in exprs


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    ds = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"  # the compose service
    prov = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "marginwatch.yml")
    (provider,) = prov["providers"]
    mounts = _mounts(_compose()["services"]["grafana"])
    assert mounts[provider["options"]["path"]] == DEPLOY / "grafana" / "dashboards"
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"


# -- docker-compose and Dockerfile --------------------------------------------------------------


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a compose service: container path -> host path (resolved, named volumes
    left out)."""
    out: dict[str, Path] = {}
    for spec in service.get("volumes", []):
        host, container = spec.split(":")[:2]
        if host.startswith((".", "/")):
            out[container] = (DEPLOY / host).resolve()
    return out


def test_compose_services_images_and_commands() -> None:
    services = _compose()["services"]
    assert set(services) == {"marginwatch", "kafka", "prometheus", "grafana"}
    mw = services["marginwatch"]
    assert mw["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / mw["build"]["context"]).resolve() == ROOT
    assert _mounts(mw)["/etc/marginwatch/marginwatch.toml"] == DEPLOY / "marginwatch.example.toml"
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert not any("ZOOKEEPER" in key for key in env)
    prom = services["prometheus"]
    assert prom["image"].startswith("prom/prometheus:")
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert _mounts(prom)["/etc/prometheus/rules"] == DEPLOY / "prometheus" / "rules"
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_every_compose_bind_mount_exists() -> None:
    for name, service in _compose()["services"].items():
        for container, host in _mounts(service).items():
            assert host.exists(), f"{name}: {host} (mounted at {container}) is missing"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_copies_existing_files_runs_as_non_root_and_runs_the_daemon() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim AS build")
    for word, rest in instructions:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile COPY {source}: missing"
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    entry = json.loads(next(rest for word, rest in instructions if word == "ENTRYPOINT"))
    assert entry == [
        "marginwatch",
        "run",
        "--config",
        "/etc/marginwatch/marginwatch.toml",
        "--http",
        "0.0.0.0:9464",
    ]
    assert ("EXPOSE", "9464") in instructions


# -- systemd ------------------------------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / "marginwatch.service").read_text())
    return parser


def test_systemd_unit_is_hardened_and_runs_the_daemon() -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[1:5] == ["run", "--config", "/etc/marginwatch/marginwatch.toml", "--http"]
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "StateDirectory": "marginwatch",
        "EnvironmentFile": "-/etc/marginwatch/marginwatch.env",
        "RestartPreventExitStatus": "2",
    }
    for key, value in expected.items():
        assert service[key] == value, key
    # the install recipe in the header names files that exist in the repository
    header = (DEPLOY / "systemd" / "marginwatch.service").read_text().split("[Unit]")[0]
    for path in re.findall(r"\b(deploy/\S+)", header):
        assert (ROOT / path).exists(), path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart to exist; point it at a stand-in executable, keep the rest.
    text = (DEPLOY / "systemd" / "marginwatch.service").read_text()
    unit = tmp_path / "marginwatch.service"
    unit.write_text(text.replace("/opt/marginwatch/bin/marginwatch", "/bin/true"))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in done.stderr.splitlines() if "marginwatch.service" in line]
    assert not problems, done.stderr


# -- Kubernetes ---------------------------------------------------------------------------------


def _k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in K8S:
        for doc in yaml.safe_load_all(path.read_text()):
            docs[f"{doc['kind']}/{doc.get('metadata', {}).get('name', '')}"] = doc
            assert "namespace" not in doc.get("metadata", {}), f"{path.name}: namespace-less"
    return docs


def test_k8s_manifests_parse_and_reference_each_other() -> None:
    docs = _k8s()
    deployment = docs["Deployment/marginwatch"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 9464
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert f"ConfigMap/{volumes['config']['configMap']['name']}" in docs
    assert f"PersistentVolumeClaim/{volumes['state']['persistentVolumeClaim']['claimName']}" in docs
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/marginwatch"
    assert "marginwatch.toml" in docs["ConfigMap/marginwatch-config"]["data"]
    secret = container["envFrom"][0]["secretRef"]["name"]
    assert docs[f"Secret/{secret}"]["stringData"]  # an example with placeholders only
    assert all(v == "replace-me" for v in docs[f"Secret/{secret}"]["stringData"].values())
    service = docs["Service/marginwatch"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    monitor = docs["ServiceMonitor/marginwatch"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    kustomization = _yaml(DEPLOY / "k8s" / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file(), resource


def test_the_example_config_exists_and_the_configmap_config_loads(tmp_path: Path) -> None:
    assert (DEPLOY / "marginwatch.example.toml").is_file()
    config = pytest.importorskip("monitor.config")
    toml = _k8s()["ConfigMap/marginwatch-config"]["data"]["marginwatch.toml"]
    path = tmp_path / "marginwatch.toml"
    path.write_text(toml)
    env = {"BINANCE_ALICE_KEY": "k", "BINANCE_ALICE_SECRET": "s"}
    loaded = config.load_config(path, environ=env)
    assert loaded is not None
