"""Request body limit: a body over `CHURN_API_MAX_BODY_BYTES` gets 413 before it is parsed or buffered."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException


class BodyLimitMiddleware:
    """Pure ASGI middleware (limit read from the settings the lifespan loaded): refuses by Content-Length
    up front, and stops a chunked body as soon as it passes the limit (the 413 raised from `receive`
    reaches FastAPI's handlers while the endpoint reads its body)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = scope["app"].state.settings.api_max_body_bytes
        detail = f"request body over {limit} bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            body = json.dumps({"detail": detail}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
