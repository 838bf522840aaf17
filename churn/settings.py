"""The one typed configuration object of the platform.

Every command, DAG task and the API read their configuration from here, so a value has one name
(`CHURN_<FIELD>` in the environment or in an optional `.env` file) and one validation. A bad value stops
start-up with a message that names the variable, instead of failing later somewhere deep in a run.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from churn.errors import ChurnError

ENV_PREFIX = "CHURN_"
DEFAULT_LOCAL_PG_PORT = 55432


class SettingsError(ChurnError, ValueError):
    """A configuration value is invalid; the message names the environment variable."""


def _split_csv(value: object) -> object:
    """Accept `a,b,c` from the environment (pydantic would otherwise expect JSON for a list)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Configuration read from `CHURN_*` variables (and `.env`); see `.env.example` for every field."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Lake: a local folder (relative paths are taken from the working directory) or s3://bucket/prefix.
    lake_url: str = "data/lake"
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    # Scores database. The default is the project-local cluster that `make demo` starts.
    database_url: str = f"postgresql+psycopg2://postgres@127.0.0.1:{DEFAULT_LOCAL_PG_PORT}/churn"

    # MLflow: tracking/registry store and where new experiments put their artifacts.
    mlflow_tracking_uri: str = "sqlite:///.local/mlflow/mlflow.db"
    mlflow_artifact_location: str = ".local/mlflow/artifacts"
    model_name: str = "kkbox-churn"
    # Training hyperparameters (also DVC's params file); relative paths are taken from the working directory.
    params_file: str = "params.yaml"

    # Dask: empty means a local cluster of `dask_workers` processes in this machine.
    dask_scheduler: str = ""
    dask_workers: int = Field(default=2, ge=1, le=256)
    dask_threads_per_worker: int = Field(default=1, ge=1, le=64)

    # Silver layout and ingest: users hashed into this many buckets; CSV read in blocks of this size.
    silver_buckets: int = Field(default=32, ge=1, le=4096)
    ingest_block_mb: int = Field(default=64, ge=1, le=1024)

    # API.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Without keys the API refuses to start, unless anonymous access is asked for explicitly.
    api_allow_anonymous: bool = False
    api_public_url: str = "http://127.0.0.1:8000"
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1_073_741_824)
    api_max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    api_request_timeout_seconds: float = Field(default=10.0, gt=0.0, le=600.0)
    model_refresh_seconds: float = Field(default=30.0, gt=0.0, le=86_400.0)
    prediction_log_flush_rows: int = Field(default=1000, ge=1, le=1_000_000)
    api_db_pool_size: int = Field(default=16, ge=1, le=500)

    # Thresholds.
    quarantine_max_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    risk_band_thresholds: Annotated[list[float], NoDecode] = Field(default_factory=lambda: [0.3, 0.6])
    active_grace_days: int = Field(default=30, ge=0, le=3650)
    score_retention_days: int = Field(default=90, ge=1, le=36500)
    scores_max_age_days: int = Field(default=2, ge=1, le=3650)
    prediction_log_retention_days: int = Field(default=90, ge=1, le=36500)
    promotion_margin: float = Field(default=0.0, ge=0.0, lt=1.0)
    drift_share_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    performance_degradation_threshold: float = Field(default=0.1, ge=0.0, le=10.0)
    # Nightly reasons: stored for every band above the lowest (the users a retention team acts on), for
    # all users, or for none (exact contributions cost several predictions each: see the README).
    reasons: Literal["bands", "all", "none"] = "bands"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("api_keys", "risk_band_thresholds", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("lake_url")
    @classmethod
    def _lake_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else "file"
        if scheme not in {"file", "s3"}:
            raise ValueError(
                f"unsupported scheme {scheme!r}: use a local folder, file:// or s3://bucket/prefix"
            )
        if scheme == "s3" and not value[len("s3://") :].strip("/"):
            raise ValueError("an s3:// lake URL needs a bucket, e.g. s3://churn-lake/prod")
        return value.rstrip("/") or value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql", "sqlite")):
            raise ValueError("expected a postgresql:// or sqlite:/// URL")
        return value

    @field_validator("risk_band_thresholds")
    @classmethod
    def _bands_increasing(cls, value: list[float]) -> list[float]:
        if not value or any(not 0.0 < t < 1.0 for t in value) or value != sorted(set(value)):
            raise ValueError("expected strictly increasing probabilities between 0 and 1, e.g. 0.3,0.6")
        return value

    @model_validator(mode="after")
    def _s3_credentials_paired(self) -> Settings:
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("CHURN_S3_ACCESS_KEY_ID and CHURN_S3_SECRET_ACCESS_KEY must be set together")
        return self

    @property
    def lake_is_s3(self) -> bool:
        """True when the lake lives in an object store rather than a local folder."""
        return self.lake_url.startswith("s3://")

    def storage_options(self) -> dict[str, object]:
        """fsspec/s3fs options for the lake: credentials and endpoint only when configured.

        No region is passed to the client: with a custom endpoint that breaks bucket creation
        (set AWS_DEFAULT_REGION instead).
        """
        if not self.lake_is_s3:
            return {}
        options: dict[str, object] = {}
        if self.s3_access_key_id is not None and self.s3_secret_access_key is not None:
            options["key"] = self.s3_access_key_id
            options["secret"] = self.s3_secret_access_key.get_secret_value()
        if self.s3_endpoint_url:
            options["endpoint_url"] = self.s3_endpoint_url
        return options


def _explain(error: ValidationError) -> str:
    """Turn pydantic's error list into lines that name the environment variable to fix."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = f"{ENV_PREFIX}{field.upper()}" if field else "configuration"
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = "" if field == "" or "secret" in field else f" (got {value!r})"
        lines.append(f"{name}: {message}{shown}")
    return "; ".join(lines)


def load_settings() -> Settings:
    """Read and validate the configuration, raising SettingsError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(f"invalid configuration: {_explain(error)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once). Tests that change the environment call cache_clear()."""
    return load_settings()
