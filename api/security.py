"""API keys: `X-API-Key` checked against `CHURN_API_KEYS` in constant time (no key configured: open)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Security, status
from fastapi.security import APIKeyHeader

from api.deps import SettingsDep

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of CHURN_API_KEYS")


async def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(_header)]) -> None:
    """401 without a key, 403 with a wrong one; every configured key is compared (no early exit)."""
    if not settings.api_keys:
        return
    if not key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header",
                            headers={"WWW-Authenticate": "APIKey"})  # fmt: skip
    matched = False
    for candidate in settings.api_keys:
        matched |= hmac.compare_digest(candidate.encode(), key.encode())
    if not matched:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")


ApiKey = Depends(require_api_key)
