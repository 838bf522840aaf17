"""The champion as a long-running process holds it: loaded once, swapped when the alias moves.

The API keeps one `ChampionHolder`; a background task calls `refresh()` every
`CHURN_MODEL_REFRESH_SECONDS`, so a promotion or rollback reaches running workers without a restart, and a
registry outage never blocks a request (requests only read the loaded model). When no model can be loaded,
`current()` raises ModelUnavailableError and the last error says why.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from churn import registry
from churn.errors import ChurnError
from churn.pipeline import inner_pipeline
from churn.settings import Settings

log = logging.getLogger(__name__)


class ModelUnavailableError(ChurnError):
    """No champion could be loaded (none registered, registry unreachable, artifact unreadable)."""


@dataclass(frozen=True)
class LoadedModel:
    """A loaded champion and what the API reports about it."""

    name: str
    version: int
    model: Any
    features: list[str]
    trained_at: dt.datetime
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def load_champion_model(settings: Settings) -> LoadedModel:
    """Load the champion with its metadata; single-threaded LightGBM (one row per request: threads cost
    more than they save)."""
    version = registry.alias_version(settings, registry.CHAMPION)
    if version is None:
        raise ModelUnavailableError(f"{settings.model_name} has no champion (run `churn train`)")
    client = registry.client(settings)
    details = client.get_model_version(settings.model_name, str(version))
    model = registry.load_model(settings, version)
    pipeline = inner_pipeline(model)
    pipeline.named_steps["model"].set_params(n_jobs=1)
    metrics = client.get_run(details.run_id).data.metrics if details.run_id else {}
    return LoadedModel(
        name=settings.model_name,
        version=version,
        model=model,
        features=list(pipeline.named_steps["features"].features),
        trained_at=dt.datetime.fromtimestamp(details.creation_timestamp / 1000, dt.UTC),
        run_id=details.run_id or "",
        metrics={k: v for k, v in metrics.items() if k.startswith(("val_", "oracle_"))},
        tags=dict(details.tags),
    )


class ChampionHolder:
    """Thread-safe holder of the current champion."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def current(self) -> LoadedModel:
        """The loaded champion, or ModelUnavailableError with the reason."""
        loaded = self._loaded
        if loaded is None:
            raise ModelUnavailableError(self.last_error or "the champion model is not loaded yet")
        return loaded

    def refresh(self) -> bool:
        """Load the champion if the alias points elsewhere than the loaded version; True when swapped.
        A failure keeps the model already loaded (and records the reason)."""
        with self._lock:
            try:
                version = registry.alias_version(self._settings, registry.CHAMPION)
                if version is not None and self._loaded is not None and version == self._loaded.version:
                    self.last_error = None
                    return False
                self._loaded = load_champion_model(self._settings)
                self.last_error = None
                log.info("serving %s v%d", self._loaded.name, self._loaded.version)
                return True
            except Exception as error:  # registry down, artifact missing: keep serving what we have
                self.last_error = f"cannot load the champion: {error}"
                log.warning("%s", self.last_error)
                return False
