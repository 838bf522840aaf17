"""Request limits. Body: over `CHURN_API_MAX_BODY_BYTES` is 413 before it is parsed or buffered (ASGI
middleware). Header size and a whole-request receive deadline: uvicorn has neither with httptools (h11's
`h11_max_incomplete_event_size` bounds only the h11 parser, and `timeout_keep_alive` only the wait between
requests), so `bounded_http_protocol` extends uvicorn's httptools protocol: request line and headers over
`CHURN_API_MAX_HEADER_BYTES` get 431 (counted as the bytes arrive, so an unterminated header line is
refused as soon as it passes the limit), and a request (or a connection's first byte) not fully received
within `CHURN_API_REQUEST_TIMEOUT_SECONDS` gets 408; both close the connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.exceptions import HTTPException
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-size limit and a request receive deadline (the limits
    are class attributes: `bounded_http_protocol` makes the configured subclass)."""

    max_header_bytes = 16_384
    request_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._received_in_headers = 0  # bytes received since the last request ended, until headers end
        self._completed = 0  # requests fully received on this connection
        self._in_message = False
        self._headers_done = False
        self._deadline: asyncio.TimerHandle | None = None
        self._too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a request is cut too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Hand `data` to the parser, but while a request's headers are incomplete no more of it than the
        header limit leaves: httptools reports a header only once its line ends, so without this count an
        unterminated header line would be buffered (and re-parsed) until the request deadline. Bytes after
        the headers end (the body) are not counted; a request completed within the data starts a new count
        (its successor's first bytes in that slice go uncounted: at most one limit more is buffered)."""
        if self._deadline is None and not self._in_message:
            self._arm()  # the first bytes of a new request on a kept-alive connection
        while data and not self.transport.is_closing():
            room = self.max_header_bytes - self._received_in_headers
            if self._headers_done or len(data) <= room:
                self._received_in_headers += 0 if self._headers_done else len(data)
                super().data_received(data)
                return
            completed = self._completed
            self._received_in_headers += room
            super().data_received(data[:room])
            if not self._headers_done and self._completed == completed:
                if not self.transport.is_closing():
                    self._refuse(431, f"request line and headers over {self.max_header_bytes} bytes")
                return
            data = data[room:]

    def send_400_response(self, msg: str) -> None:
        """The parser stopped: on the header limit (`_count` raised in its callback) answer 431."""
        if self._too_large:
            self._refuse(431, f"request line and headers over {self.max_header_bytes} bytes")
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes, self._in_message, self._headers_done = 0, True, False

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._headers_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message, self._headers_done, self._received_in_headers = False, False, 0
        self._completed += 1
        self._disarm()
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._too_large = True
            raise ValueError("headers too large")  # httptools stops parsing and raises a parser error

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        """The deadline passed: 408 for a request not fully received (or a silent new connection); a
        request whose answer has begun, or an idle kept-alive connection, is left to uvicorn."""
        self._deadline = None
        if self.transport.is_closing() or (not self._in_message and self.cycle is not None):
            return
        cycle = self.cycle if self._in_message and self._headers_done else None
        if cycle is not None:
            if cycle.response_started:
                return
            cycle.disconnected = (
                True  # the endpoint reading the body sees a disconnect; its answer is dropped
            )
            cycle.message_event.set()
        self._refuse(408, f"request not received within {self.request_timeout:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer `status` with a JSON detail and close the connection (the request is not served)."""
        self._disarm()
        body = json.dumps({"detail": detail}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n") % (status, reason, len(body))  # fmt: skip
        self.logger.warning("refused a request from %s: %s", self.client, detail)
        self.transport.write(head + body)
        self.transport.close()


def bounded_http_protocol(max_header_bytes: int, request_timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` option, with these limits."""
    limits = {"max_header_bytes": max_header_bytes, "request_timeout": request_timeout}
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), limits)
