"""The Prometheus setup in docker/prometheus/: the real promtool checks the rules, runs their unit tests and
checks the scrape configuration; every alert is labelled, annotated and explained in docs/operations.md; and
every metric the rules read is one the backend serves, so rules and metrics cannot drift apart.

promtool comes from Debian's prometheus package (bin/ensure-test-tools unpacks it into the virtualenv)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.operations.scrape import scrape

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"


def promtool() -> str:
    beside_python = Path(sys.executable).parent / "promtool"
    found = str(beside_python) if beside_python.exists() else shutil.which("promtool")
    if not found:
        pytest.skip("promtool is not installed (bin/ensure-test-tools unpacks it from Debian's prometheus package)")
    return found


def run_promtool(*arguments: str) -> None:
    result = subprocess.run([promtool(), *arguments], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"promtool {' '.join(arguments)}:\n{result.stdout}\n{result.stderr}"


def alerting_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    run_promtool("check", "rules", RULES.name)
    run_promtool("test", "rules", RULE_TESTS.name)


def test_promtool_accepts_the_scrape_configuration_and_the_rules_it_loads():
    run_promtool("check", "config", "prometheus.yml")


def _anchor(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section():
    anchors = {_anchor(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    rules = alerting_rules()
    assert len(rules) >= 10
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
        document, _, anchor = annotations["runbook"].partition("#")
        assert document == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: no section {anchor}"


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not():
    firing, quiet = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"


_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
_NOT_METRICS |= {"offset", "inf", "nan"}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords, label names
    (in braces or in by/on/... lists), durations or strings."""
    expression = re.sub(r'"[^"]*"', "", expression)
    expression = re.sub(r"\{[^}]*\}", "", expression)
    expression = re.sub(r"\[[^\]]*\]", "", expression)
    expression = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expression)
    expression = re.sub(r"\boffset\s+\w+", "", expression)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expression))
    return {name for name in names if name not in _NOT_METRICS}


def test_metric_names_are_found_in_expressions():
    assert metric_names(
        'sum by (task) (rate(a_total{outcome="x"}[5m])) / on (task) b offset 15m > 0 or on () vector(0)'
    ) == {"a_total", "b"}


def served_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "summary": ["_count", "_sum"]}
        names.update(family.name + suffix for suffix in suffixes.get(family.type, []))
    return names


def documented_elsewhere() -> set[str]:
    """The metrics alerts.yml's header names as not the backend's own (`#   name   where it comes from`)."""
    header = RULES.read_text().split("groups:", 1)[0]
    return set(re.findall(r"^#\s{3}([a-z_:][a-z0-9_:]*)\s{2,}", header, re.M))


@pytest.mark.django_db
def test_every_metric_the_rules_read_is_served_by_the_backend(monkeypatch):
    # One process's exposition lists every metric defined, labelled ones before their first sample too (the
    # multiprocess collector only shows what some process has already counted).
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    served = served_names(scrape())
    used = set().union(*(metric_names(rule["expr"]) for rule in alerting_rules()))
    elsewhere = documented_elsewhere()

    assert "telemetry_celery_queue_depth" in used and elsewhere >= {"up"}
    assert used - served - elsewhere == set(), "read by the rules but served by no one"
    assert elsewhere <= used, "documented as from elsewhere but not used"
