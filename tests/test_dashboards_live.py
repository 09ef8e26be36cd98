"""Every Grafana panel's query returns data from a real Prometheus scraping a real demo run.

``marginwatch demo`` runs as a subprocess (fast market time) with Kafka (Tansu) and MQTT
(Mosquitto) sinks, so the delivery panels have series; Debian's Prometheus scrapes it every
second with the repository's alerting rules loaded. Once Prometheus holds enough samples (polled
on its query API against a deadline, never a fixed sleep), each panel expression from both
dashboards, with Grafana's variables substituted, must return at least one sample.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from services import Service, free_port, start_prometheus

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "rules" / "marginwatch.yml"
DEADLINE_S = 90.0
POLL_S = 0.25
# What Grafana would substitute with "All" selected and a short time range.
VARIABLES = {
    "${__rate_interval}": "30s",
    "$__rate_interval": "30s",
    "${__interval}": "5s",
    "$__interval": "5s",
    "${venue}": ".*",
    "$venue": ".*",
    "${account}": ".*",
    "$account": ".*",
}


def _expand(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def _panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        panels = [q for p in dash["panels"] for q in (p, *p.get("panels", []))]
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((path.stem, f"{panel['title']} [{target['refId']}]", target["expr"]))
    return out


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        return json.loads(response.read())


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    doc = _get_json(url)
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def _wait_for(
    what: str, check: Callable[[], bool], demo: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if demo.poll() is not None:
            pytest.fail(f"demo exited ({demo.returncode}) waiting for {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        # Bounded poll of an external server; ends early if the demo dies.
        with contextlib.suppress(subprocess.TimeoutExpired):
            demo.wait(timeout=POLL_S)


def _scalar_at_least(port: int, expr: str, minimum: float) -> Callable[[], bool]:
    def check() -> bool:
        try:
            result = _query(port, expr)
        except OSError:
            return False
        return bool(result) and float(result[0]["value"][1]) >= minimum

    return check


@pytest.mark.integration
def test_every_panel_query_returns_data(tmp_path: Path, tansu: Service, mosquitto: Service) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    argv = [
        sys.executable,
        "-m",
        "monitor.cli",
        "demo",
        "--for",
        "300",
        "--time-scale",
        "4",
        "--http",
        f"127.0.0.1:{port}",
        "--kafka",
        f"127.0.0.1:{tansu.port}",
        "--mqtt",
        f"127.0.0.1:{mosquitto.port}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path
        )
    prometheus: Service | None = None
    try:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            "scrape_configs:\n  - job_name: marginwatch\n    scrape_interval: 1s\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
        prometheus = start_prometheus(config, tmp_path)
        prom = prometheus.port
        _wait_for(
            "the first scrape", _scalar_at_least(prom, 'max(up{job="marginwatch"})', 1), proc, log
        )
        _wait_for(
            "account series",
            _scalar_at_least(prom, "count(marginwatch_account_health)", 1),
            proc,
            log,
        )
        # rate()/increase() need two samples in their window, histogram quantiles observations:
        # wait for ten scrapes and the demo's crash to have produced alerts.
        _wait_for(
            "ten scrapes",
            _scalar_at_least(prom, 'count_over_time(up{job="marginwatch"}[1m])', 10),
            proc,
            log,
        )
        _wait_for(
            "alerts from the crash",
            _scalar_at_least(prom, "sum(marginwatch_alerts_total)", 1),
            proc,
            log,
        )
        queries = _panel_queries()
        assert len(queries) > 30
        empty = [
            f"{dash}: {title}: {expr}"
            for dash, title, expr in queries
            if not _query(prom, _expand(expr))
        ]
        assert not empty, "panels without data:\n" + "\n".join(empty)
        # the repository's rules loaded into the real server and evaluate without error
        groups = _get_json(f"http://127.0.0.1:{prom}/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        expected = {
            rule.get("alert") or rule["record"]
            for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]
        }
        assert {r["name"] for r in rules} == expected
        assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    finally:
        if prometheus is not None:
            prometheus.stop()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
