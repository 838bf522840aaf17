"""Static checks of the compose stack (no Docker engine here): it cannot drift from the code unnoticed."""

from __future__ import annotations

from pathlib import Path

import yaml

from churn.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
STATEFUL = {"postgres": "/var/lib/postgresql/data", "minio": "/data"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_every_service_has_an_image_or_a_build_that_exists() -> None:
    for name, service in compose()["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name


def test_churn_variables_match_settings_fields() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        env = service.get("environment") or {}
        unknown = {k for k in env if k.startswith(ENV_PREFIX)} - fields
        assert not unknown, f"{name}: {unknown} are not Settings fields"


def test_long_running_services_have_health_checks() -> None:
    for name, service in compose()["services"].items():
        if service.get("restart") == "no":
            continue  # one-shot jobs
        assert "healthcheck" in service, name


def test_stateful_services_keep_data_in_volumes() -> None:
    spec = compose()
    for name, mount in STATEFUL.items():
        volumes = spec["services"][name]["volumes"]
        named = [v.split(":")[0] for v in volumes if v.endswith(f":{mount}")]
        assert named and named[0] in spec["volumes"], name


def test_host_ports_do_not_clash() -> None:
    ports = [p.split(":")[0] for s in compose()["services"].values() for p in s.get("ports", [])]
    assert len(ports) == len(set(ports))


def test_no_secret_values_in_the_compose_file() -> None:
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET")):
                assert str(value).startswith("${"), f"{name}.{key} must come from the env file"


def test_github_workflow_runs_what_ci_runs() -> None:
    """The GitHub workflow lints and tests with the Makefile, as .ci/run does, against a PostgreSQL
    service reachable at the URL the tests read, under CI=true."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yaml").read_text())
    job = workflow["jobs"]["test"]
    commands = [step["run"] for step in job["steps"] if "run" in step]
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert commands == ["make lint", "make test"]
    assert all(command in ci_run for command in commands)
    assert job["env"]["CI"] == "true"
    postgres = job["services"]["postgres"]
    assert postgres["image"].startswith("postgres:") and "5432:5432" in postgres["ports"]
    assert job["env"]["CHURN_TEST_DATABASE_URL"].endswith("@127.0.0.1:5432/" + postgres["env"]["POSTGRES_DB"])
