"""Server limits over real sockets, on a server configured like `python -m api.serve`: an oversized header
is refused, a request not fully received within the request timeout is cut."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time

from api.main import create_app
from tests.api.conftest import Published
from tests.conftest import LiveServer


def _exchange(port: int, payload: bytes, wait: float) -> tuple[bytes, float]:
    """Send `payload`, then read until the server closes (or `wait` s pass); the answer and the seconds."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        with contextlib.suppress(OSError):  # the server closed while a large payload was still being sent
            sock.sendall(payload)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, time.monotonic() - started


def test_a_16_mb_header_is_refused(published: Published) -> None:
    header = b"X-Filler: " + b"a" * (16 * 1024 * 1024) + b"\r\n"
    with LiveServer(create_app()) as server:
        answer, _ = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n", 30)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_an_unterminated_header_is_refused_as_it_passes_the_limit(published: Published) -> None:
    """A header line that never ends is refused once the bytes received pass the limit, not buffered until
    the request deadline (30 s here: the 431 comes first, then the close, not a 408)."""
    payload = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (1024 * 1024)
    with LiveServer(create_app(), request_timeout_seconds=30.0) as server:
        answer, took = _exchange(server.port, payload, 20)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert took < 20  # the server closed the connection; the read did not wait out its timeout


def test_headers_near_the_limit_then_a_body_and_pipelined_requests_are_served(published: Published) -> None:
    """The header-phase count is per request, and a body that follows the headers in the same packet is
    not counted: each of these requests has headers just under the limit."""
    limit = 4096
    filler = b"X-Filler: " + b"a" * (limit - 200) + b"\r\n"
    body = b'{"msno": "short"}' + b" " * 8000
    post = (b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" + filler
            + b"content-length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nconnection: close\r\n" + filler + b"\r\n"
    with LiveServer(create_app(), max_header_bytes=limit) as server:
        answer, _ = _exchange(server.port, post + get * 3 + last, 15)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"422", b"200", b"200", b"200", b"200"], answer[:500]


def test_partial_requests_are_cut_after_the_request_timeout(published: Published) -> None:
    with LiveServer(create_app(), request_timeout_seconds=1.0) as server:
        headers, headers_took = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", 15)
        body, body_took = _exchange(
            server.port,
            b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"ms',
            15,
        )
        silent, silent_took = _exchange(server.port, b"", 15)
        ok, _ = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n", 15)
    for answer, took in ((headers, headers_took), (body, body_took), (silent, silent_took)):
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert 0.9 < took < 5
    assert ok.startswith(b"HTTP/1.1 200")


def test_serve_help_names_the_key_requirement_and_the_limit_settings() -> None:
    """`python -m api.serve --help` says what start-up needs and which settings bound requests."""
    result = subprocess.run(
        [sys.executable, "-m", "api.serve", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    text = " ".join(result.stdout.split())
    assert "CHURN_API_KEYS" in text and "CHURN_API_ALLOW_ANONYMOUS=true" in text
    for limit in ("MAX_BODY_BYTES", "MAX_HEADER_BYTES", "REQUEST_TIMEOUT_SECONDS"):
        assert f"CHURN_API_{limit}" in text, limit
