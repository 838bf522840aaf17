"""Settings: defaults, environment overrides, and errors that name the variable to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn.settings import Settings, SettingsError, load_settings


def test_defaults_describe_the_embedded_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHURN_LAKE_URL")
    settings = load_settings()
    assert settings.lake_url == "data/lake"
    assert not settings.lake_is_s3
    assert settings.database_url.startswith("postgresql+psycopg2://postgres@127.0.0.1:55432/")
    assert settings.dask_scheduler == ""
    assert settings.api_keys == []
    assert settings.risk_band_thresholds == [0.3, 0.6]
    assert settings.storage_options() == {}


def test_environment_overrides_and_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_API_KEYS", "alpha, beta,,gamma")
    monkeypatch.setenv("CHURN_RISK_BAND_THRESHOLDS", "0.2,0.5,0.8")
    monkeypatch.setenv("CHURN_DASK_SCHEDULER", "tcp://scheduler:8786")
    settings = load_settings()
    assert settings.api_keys == ["alpha", "beta", "gamma"]
    assert settings.risk_band_thresholds == [0.2, 0.5, 0.8]
    assert settings.dask_scheduler == "tcp://scheduler:8786"


def test_dotenv_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CHURN_DASK_WORKERS=5\nCHURN_MODEL_NAME=from-dotenv\n")
    monkeypatch.setenv("CHURN_MODEL_NAME", "from-env")
    settings = load_settings()
    assert settings.dask_workers == 5
    assert settings.model_name == "from-env"


def test_s3_lake_gets_endpoint_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_LAKE_URL", "s3://churn-lake/prod/")
    monkeypatch.setenv("CHURN_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("CHURN_S3_ACCESS_KEY_ID", "minio")
    monkeypatch.setenv("CHURN_S3_SECRET_ACCESS_KEY", "minio-secret")
    settings = load_settings()
    assert settings.lake_is_s3
    assert settings.lake_url == "s3://churn-lake/prod"
    assert settings.storage_options() == {
        "key": "minio",
        "secret": "minio-secret",
        "endpoint_url": "http://minio:9000",
    }
    assert "minio-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CHURN_DASK_WORKERS", "two", "CHURN_DASK_WORKERS: Input should be a valid integer"),
        ("CHURN_DASK_WORKERS", "0", "CHURN_DASK_WORKERS: Input should be greater than or equal to 1"),
        ("CHURN_LAKE_URL", "ftp://host/lake", "CHURN_LAKE_URL: unsupported scheme 'ftp'"),
        ("CHURN_LAKE_URL", "s3://", "CHURN_LAKE_URL: an s3:// lake URL needs a bucket"),
        (
            "CHURN_DATABASE_URL",
            "mysql://x/y",
            "CHURN_DATABASE_URL: expected a postgresql:// or sqlite:/// URL",
        ),
        ("CHURN_RISK_BAND_THRESHOLDS", "0.6,0.3", "CHURN_RISK_BAND_THRESHOLDS: expected strictly increasing"),
        ("CHURN_RISK_BAND_THRESHOLDS", "0.3,1.5", "CHURN_RISK_BAND_THRESHOLDS: expected strictly increasing"),
        ("CHURN_QUARANTINE_MAX_FRACTION", "2", "CHURN_QUARANTINE_MAX_FRACTION: Input should be less than"),
        ("CHURN_LOG_LEVEL", "LOUD", "CHURN_LOG_LEVEL: Input should be 'DEBUG'"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_half_configured_s3_credentials_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_S3_ACCESS_KEY_ID", "only-the-key")
    with pytest.raises(SettingsError, match="must be set together"):
        load_settings()


def test_secret_value_is_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_S3_SECRET_ACCESS_KEY", "hunter2")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_env_example_documents_every_setting() -> None:
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = {line.split("=", 1)[0].lstrip("# ").strip() for line in example.splitlines() if "=" in line}
    expected = {f"CHURN_{name.upper()}" for name in Settings.model_fields}
    assert expected <= documented, f"missing from .env.example: {sorted(expected - documented)}"
