"""Canary for live predictions: a share of `/predict` requests answered by the challenger, sticky per user.

The share is a registry tag (`canary_share`) on the version the `challenger` alias names, set with `churn
model canary --share S` (`registry.set_canary_share`): the API's refresh loop (every
CHURN_MODEL_REFRESH_SECONDS) reads it, so it takes effect without a restart, and share 0 (or no challenger)
stops the canary. A request is the canary's when the stable hash of its msno, a number in [0, 1), is below the
share: a user gets the same version on every request while the share holds, and raising the share only adds
users. Raw events sent without an msno go to the champion (there is nothing to be sticky on). A challenger
that cannot be served (another feature spec, an unreadable artifact) is logged and no request goes to it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Literal

from churn.model import registry
from churn.model.champion import LoadedModel
from churn.model.registry import CANARY_TAG
from churn.settings import Settings

log = logging.getLogger(__name__)
Role = Literal["champion", "canary"]


def canary_bucket(msno: str) -> float:
    """The user's stable place in [0, 1) (the first 8 bytes of SHA-256 of the msno)."""
    return int.from_bytes(hashlib.sha256(msno.encode()).digest()[:8], "big") / 2**64


def parse_share(text: str | None) -> float:
    """A tag's share as a number in [0, 1]; anything else is 0 (no canary), never an error at serving."""
    try:
        share = float(text) if text is not None else 0.0
    except ValueError:
        return 0.0
    return share if 0.0 <= share <= 1.0 else 0.0


@dataclass(frozen=True)
class Canary:
    """The challenger being served to a share of users."""

    loaded: LoadedModel
    share: float


class CanaryHolder:
    """Thread-safe holder of the canary (None when there is none)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._canary: Canary | None = None
        self._lock = threading.Lock()

    @property
    def canary(self) -> Canary | None:
        """The canary being served, if any."""
        return self._canary

    def refresh(self) -> bool:
        """Follow the challenger alias and its share; True when the canary changed. A registry outage keeps
        what is served; a challenger that does not load stops the canary (logged)."""
        from churn.model.serving import load_version

        with self._lock:
            try:
                version = registry.alias_version(self._settings, registry.CHALLENGER)
                share = 0.0
                if version is not None:
                    details = registry.client(self._settings).get_model_version(
                        self._settings.model_name, str(version)
                    )
                    share = parse_share(details.tags.get(CANARY_TAG))
            except Exception as error:  # registry down: keep serving what we have
                log.warning("cannot read the challenger alias: %s", error)
                return False
            current = self._canary
            if version is None or share == 0.0:
                self._canary = None
                return current is not None
            if current is not None and current.loaded.version == version:
                self._canary = Canary(current.loaded, share)
                return current.share != share
            try:
                loaded = load_version(self._settings, version)
            except Exception as error:
                detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                log.warning("canary v%d not served: %s", version, detail)
                self._canary = None
                return current is not None
            self._canary = Canary(loaded, share)
            log.info("canary: v%d answers %.1f%% of live predictions", version, 100 * share)
            return True

    def choose(self, champion: LoadedModel, msno: str | None) -> tuple[LoadedModel, Role]:
        """The model that answers a request of `msno`, and its role ("canary" or "champion")."""
        canary = self._canary
        if canary is not None and msno is not None and canary_bucket(msno) < canary.share:
            return canary.loaded, "canary"
        return champion, "champion"
