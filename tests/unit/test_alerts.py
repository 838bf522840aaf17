"""The compose stack's Prometheus alert rules: valid, loaded by the stack, firing as designed (promtool's
own rule unit tests, docker/prometheus/alerts.test.yml), and reading metrics the API exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docker" / "prometheus" / "alerts.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (.ci/run installs Debian's prometheus package for it)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def test_alert_rules_are_valid_and_fire_as_their_unit_tests_say() -> None:
    tool = promtool()
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULES.with_name("alerts.test.yml"))]):
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_stack_loads_the_rules_and_they_read_exported_metrics() -> None:
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    assert (
        "./docker/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"
        in compose["services"]["prometheus"]["volumes"]
    )
    names = {"ChurnScoresStale", "ChurnScoresAgeUnknown", "ChurnApiDown", "ChurnApiErrors", "ChurnDrift"}
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == names
    exported = (ROOT / "api" / "metrics.py").read_text()
    used = set(re.findall(r"\bchurn_[a-z_]+", " ".join(rule["expr"] for rule in rules)))
    assert used == {"churn_scores_age_days", "churn_drift_share", "churn_api_requests_total"}
    assert all(f'"{name.removesuffix("_total")}' in exported for name in used), used
