"""Static checks of the compose stack (no Docker engine here): it cannot drift from the code unnoticed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from churn.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
STATEFUL = {
    "postgres": "/var/lib/postgresql/data",
    "minio": "/data",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
    "airflow-scheduler": "/opt/airflow/logs",
}
STACK = {
    "postgres", "minio", "minio-buckets", "mlflow", "migrate", "api", "dask-scheduler", "dask-worker",
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "statsd-exporter", "prometheus", "grafana",
}  # fmt: skip


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_every_service_has_an_image_or_a_build_that_exists() -> None:
    for name, service in compose()["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            dockerfile = ROOT / service["build"]["context"] / service["build"]["dockerfile"]
            assert dockerfile.is_file(), name
            stages = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile.read_text(), re.MULTILINE)
            assert service["build"].get("target") in stages, f"{name}: target must be one of {stages}"
        else:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), (
                f"{name}: pin the tag"
            )


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


# Services people use, published on the host; everything else (PostgreSQL, MinIO, the Dask scheduler that
# runs submitted code, Prometheus) stays on the compose network.
PUBLISHED = {"api", "airflow-apiserver", "grafana", "mlflow"}
LOOPBACK_DEFAULT = re.compile(r"^(?:127\.0\.0\.1|\$\{CHURN_BIND_ADDRESS:-127\.0\.0\.1\}):(\d+):(\d+)$")


def published_ports() -> dict[str, list[str]]:
    return {name: [str(p) for p in s.get("ports", [])] for name, s in compose()["services"].items()}


def test_host_ports_do_not_clash() -> None:
    ports = [p.rsplit(":", 2)[-2] for ports in published_ports().values() for p in ports]
    assert len(ports) == len(set(ports))


def test_only_the_services_people_use_publish_ports() -> None:
    publishing = {name for name, ports in published_ports().items() if ports}
    assert publishing <= PUBLISHED, f"{publishing - PUBLISHED} must stay on the compose network"
    assert {"api", "airflow-apiserver", "grafana"} <= publishing


def test_published_ports_bind_to_loopback_by_default() -> None:
    for name, ports in published_ports().items():
        for port in ports:
            assert LOOPBACK_DEFAULT.match(port), f"{name}: {port!r} must bind to 127.0.0.1 by default"


def test_mlflow_without_login_is_never_published_beyond_loopback() -> None:
    """MLflow has no login and a writable registry is code execution in the API: the address that
    publishes the API and the UIs more widely does not apply to it."""
    assert all(p.startswith("127.0.0.1:") for p in published_ports()["mlflow"])


def test_the_api_keys_are_required_like_the_other_secrets() -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    assert compose()["x-churn-env"]["CHURN_API_KEYS"] == "${CHURN_API_KEYS:?set CHURN_API_KEYS}"
    assert "${CHURN_API_KEYS:-" not in text
    assert re.search(r"^# CHURN_API_KEYS=", (ROOT / ".env.example").read_text(), re.MULTILINE)


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


def test_the_stack_has_every_platform_service_and_a_valid_start_order() -> None:
    services = compose()["services"]
    assert set(services) == STACK
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} waits for unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency} to be healthy"
            if rule["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} is not a one-shot job"


def test_images_are_multi_stage_non_root_and_installed_from_the_lock() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 3
    assert "COPY requirements.txt" in dockerfile and "pip sync" in dockerfile
    # the library finds its migrations beside its package (churn/migrations.py: SQL_DIR)
    assert "PYTHONPATH=/app" in dockerfile and "WORKDIR /app" in dockerfile
    assert "COPY sql ./sql" in dockerfile and "COPY churn ./churn" in dockerfile
    for stage in re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[2:]:  # every final stage
        users = re.findall(r"^USER (\S+)$", stage, re.MULTILINE)
        assert users and users[-1] not in {"root", "0"}, stage.splitlines()[0]


def test_airflow_services_share_one_configuration_with_the_lake_connection() -> None:
    services = compose()["services"]
    airflow = [s for n, s in services.items() if n.startswith("airflow-")]
    assert len({json.dumps(s["environment"], sort_keys=True) for s in airflow}) == 1
    env = airflow[0]["environment"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
    lake = json.loads(env["AIRFLOW_CONN_CHURN_LAKE"].replace("${MINIO_ROOT_USER:?set MINIO_ROOT_USER}", "u")
                      .replace("${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD}", "p"))  # fmt: skip
    assert lake["conn_type"] == "aws" and lake["extra"]["endpoint_url"] == "http://minio:9000"
    init = (ROOT / "docker" / "postgres" / "init-databases.sh").read_text()
    assert "for db in airflow mlflow" in init
    mlflow = services["mlflow"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    # MLflow 3 answers 403 to Host headers it does not allow: the clients' `http://mlflow:5000` must be
    allowed = mlflow["command"][mlflow["command"].index("--allowed-hosts") + 1].split(",")
    assert env["CHURN_MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and "mlflow:5000" in allowed


def test_prometheus_scrapes_services_that_exist_on_their_ports() -> None:
    services = compose()["services"]
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert {"api:8000", "statsd-exporter:9102", "dask-scheduler:8787"} == set(targets)
    for target in targets:
        host, port = target.split(":")
        service = services[host]
        command = service.get("command") or []
        published = [str(p).split(":")[-1] for p in service.get("ports", []) + service.get("expose", [])]
        listens = any(part.endswith(f":{port}") for part in command if isinstance(part, str))
        assert port in published or listens, f"{host} does not serve :{port}"
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter"


def test_dashboard_queries_name_metrics_and_tables_that_exist() -> None:
    dashboard = json.loads((ROOT / "docker" / "grafana" / "dashboards" / "churn.json").read_text())
    metrics_code = (ROOT / "api" / "metrics.py").read_text()
    defined = set(re.findall(r'"(churn_api_[a-z_]+)"', metrics_code))
    tables = set(
        re.findall(
            r"CREATE TABLE (\w+)", "".join(p.read_text() for p in (ROOT / "sql").glob("*.postgresql.sql"))
        )
    )
    titles, used_metrics, used_tables = [], set(), set()
    for panel in dashboard["panels"]:
        titles.append(panel["title"])
        for target in panel["targets"]:
            for name in re.findall(r"churn_api_[a-z_]+", target.get("expr", "")):
                used_metrics.add(re.sub(r"_(bucket|count|sum)$", "", name))
            used_tables.update(re.findall(r"FROM (\w+)", target.get("rawSql", "")))
    assert used_metrics and used_metrics <= defined, used_metrics - defined
    assert used_tables == {"score_runs", "drift_reports", "model_performance"} and used_tables <= tables
    wanted = ("latency", "throughput", "scored per published night", "drift share", "champion version")
    assert all(any(w in t.lower() for t in titles) for w in wanted), titles
    sources = yaml.safe_load(
        (ROOT / "docker" / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    uids = {d["uid"] for d in sources["datasources"]}
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} <= uids
