"""API keys: `X-API-Key` checked against `CHURN_API_KEYS` in constant time.

Fails closed: with no key configured the API refuses to start (`access_mode` raises), unless
`CHURN_API_ALLOW_ANONYMOUS=true` asks for an open API explicitly. Keys present are always checked.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Security, status
from fastapi.security import APIKeyHeader

from api.deps import SettingsDep
from churn.settings import Settings, SettingsError

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of CHURN_API_KEYS")

NO_KEYS = (
    "CHURN_API_KEYS is empty: set at least one API key (comma-separated), or set "
    "CHURN_API_ALLOW_ANONYMOUS=true to serve every route without a key"
)


def access_mode(settings: Settings) -> Literal["api-key", "anonymous"]:
    """How requests are authenticated; SettingsError naming CHURN_API_KEYS when neither keys nor the
    explicit opt-out are configured (one rule for the start-up check, readiness and every request)."""
    if settings.api_keys:
        return "api-key"
    if settings.api_allow_anonymous:
        return "anonymous"
    raise SettingsError(NO_KEYS)


def key_valid(candidate: str, keys: list[str]) -> bool:
    """True when `candidate` is one of `keys`, in constant time (every key compared, no early exit); the
    API's header and the retention page's sign-in check keys with this one rule."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(key.encode(), candidate.encode())
    return matched


async def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(_header)]) -> None:
    """401 without a key, 403 with a wrong one; every configured key is compared (no early exit)."""
    if access_mode(settings) == "anonymous":
        return
    if not key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header",
                            headers={"WWW-Authenticate": "APIKey"})  # fmt: skip
    if not key_valid(key, settings.api_keys):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")


ApiKey = Depends(require_api_key)
