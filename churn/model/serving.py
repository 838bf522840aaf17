"""The champion as a long-running process holds it: loaded once, swapped when the alias moves.

The API keeps one `ChampionHolder`; a background task calls `refresh()` every
`CHURN_MODEL_REFRESH_SECONDS`, so a promotion or rollback reaches running workers without a restart, and a
registry outage never blocks a request (requests only read the loaded model).

Which version a worker serves is one rule, the same for a worker that starts and one that runs: the
version the `champion` alias names; when that one cannot be served (its artifact is missing or unreadable,
or it was trained on another feature spec), the newest lower version that was champion once
(`registry.previous_champions`: a `promotion.decision` tag "promoted"/"promoted by hand") that loads. The
refused version is logged with the reason and its artifact location, and `status()` tells /readyz and
/models/champion `kkbox-churn v1; v2 refused`. A worker already serving the fallback keeps it without a
reload. When no candidate loads, or the registry cannot be read, a worker keeps what it serves (a fresh
worker then has none: `current()` raises ModelUnavailableError and the API answers 503).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from churn.model import champion, registry
from churn.model.champion import LoadedModel, ModelUnavailableError
from churn.model.pipeline import inner_pipeline
from churn.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """A champion version that cannot be served: `reason` names the version and its artifact location
    (for the log), `public` says why without saying where (for API answers)."""

    version: int
    reason: str
    public: str


def load_version(settings: Settings, version: int) -> LoadedModel:
    """`churn.model.champion.load_version` for a server: single-threaded LightGBM (one row per request:
    threads cost more than they save)."""
    loaded = champion.load_version(settings, version)
    inner_pipeline(loaded.model).named_steps["model"].set_params(n_jobs=1)
    return loaded


def _refusal(settings: Settings, version: int, error: Exception) -> Refusal:
    """What to log and what to answer about a version that did not load."""
    if isinstance(error, ModelUnavailableError):  # a refusal (feature spec): its text names no place
        return Refusal(version, f"v{version} refused: {error}", str(error).removeprefix(f"v{version} "))
    try:
        where = registry.client(settings).get_model_version_download_uri(settings.model_name, str(version))
    except Exception:  # the registry itself failing: the error says enough
        where = "?"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    reason = f"v{version} refused: cannot load its artifact {where}: {first_line}"
    return Refusal(version, reason, "its artifact cannot be loaded (see the API log)")


class ChampionHolder:
    """Thread-safe holder of the current champion."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()
        self._problem: str | None = None  # why nothing is loaded: public, no locations
        self.refused: Refusal | None = None

    def current(self) -> LoadedModel:
        """The loaded champion, or ModelUnavailableError with the reason."""
        loaded = self._loaded
        if loaded is None:
            raise ModelUnavailableError(self._problem or "the champion model is not loaded yet")
        return loaded

    def status(self) -> str:
        """One line for readiness: `kkbox-churn v1`, `kkbox-churn v1; v2 refused`, or `unavailable`."""
        loaded, refused = self._loaded, self.refused
        if loaded is None:
            return "unavailable"
        return f"{loaded.name} v{loaded.version}" + (f"; v{refused.version} refused" if refused else "")

    def refusal(self) -> str | None:
        """The refused champion version and why, without locations (`v2: its artifact cannot be ...`)."""
        refused = self.refused
        return None if refused is None else f"v{refused.version}: {refused.public}"

    def refresh(self) -> bool:
        """Serve the alias's version, or the newest earlier champion that loads (module docstring); True
        when the served model changed. A registry outage keeps the model already loaded."""
        with self._lock:
            try:
                version = registry.alias_version(self._settings, registry.CHAMPION)
            except Exception as error:  # registry down: keep serving what we have
                self._problem = "the model registry cannot be read (see the API log)"
                log.warning("cannot read the champion alias: %s", error)
                return False
            if version is None:
                self._problem = f"{self._settings.model_name} has no champion (run `churn train`)"
                log.warning("%s", self._problem)
                return False
            if self._loaded is not None and self._loaded.version == version:
                self.refused = None
                return False
            return self._serve_first_loadable(version)

    def _serve_first_loadable(self, aliased: int) -> bool:
        refused: Refusal | None = None
        try:
            candidates = [aliased, *registry.previous_champions(self._settings, aliased)]
        except Exception as error:  # the registry failing half-way: only the alias's version
            log.warning("cannot list earlier champions: %s", error)
            candidates = [aliased]
        for version in candidates:
            if self._loaded is not None and self._loaded.version == version:
                self._note_refusal(refused)
                return False
            try:
                self._loaded = load_version(self._settings, version)
            except Exception as error:  # artifact missing, unreadable, other feature spec: try the next
                refusal = _refusal(self._settings, version, error)
                refused = refused or refusal
                if refusal.version != aliased:
                    log.warning("%s", refusal.reason)
                continue
            self._note_refusal(refused)
            log.info("serving %s v%d", self._loaded.name, version)
            return True
        self._note_refusal(refused)
        if refused is not None:
            self._problem = f"v{aliased} refused: {refused.public}; no earlier champion loads"
        return False

    def _note_refusal(self, refused: Refusal | None) -> None:
        """Record the refused aliased version, logging it once per change (refresh runs every few s)."""
        if refused is not None and refused != self.refused:
            log.warning("%s", refused.reason)
        self.refused = refused
