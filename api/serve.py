"""Serve `api.main:app` with N uvicorn worker processes, each on its own SO_REUSEPORT socket.

`uvicorn --workers N` shares one listening socket and lets the workers race for `accept()`: with
keep-alive clients the connections pile onto one worker (measured here: 23 of 32 on one of two workers),
and its queue sets the tail latency. With a socket per worker and SO_REUSEPORT, the kernel spreads new
connections over the workers by hash. A worker that dies stops the others (the supervisor - compose,
systemd, Kubernetes - restarts the service); SIGTERM/SIGINT stop all gracefully. Every server (these
workers, the tests' live server) takes its uvicorn configuration from `server_config`: the header-size
and request-deadline limits of api.limits, keep-alive, concurrency and backlog bounds.

Usage: `python -m api.serve [--host 127.0.0.1] [--port 8000] [--workers 2] [--log-level info]`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import Any

from api.limits import bounded_http_protocol
from churn.settings import Settings, load_settings

BACKLOG = 2048  # connections the kernel queues per worker socket before refusing


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


KEEP_ALIVE_SECONDS = 5  # an idle kept-alive connection is closed after this
CONNECTIONS_PER_WORKER = 1000  # beyond: 503 (bounds the file descriptors and memory a flood can take)
_DEFAULTS = Settings.model_fields


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    max_header_bytes: int = _DEFAULTS["api_max_header_bytes"].default,
    request_timeout_seconds: float = _DEFAULTS["api_request_timeout_seconds"].default,
) -> Any:
    """The uvicorn configuration of every API server (the workers here, the tests' live server): the
    header-size and request-deadline protocol of api.limits, keep-alive and concurrency bounds."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        http=bounded_http_protocol(max_header_bytes, request_timeout_seconds),
        h11_max_incomplete_event_size=max_header_bytes,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=CONNECTIONS_PER_WORKER,
        backlog=BACKLOG,
    )


EPILOG = (
    "Settings come from the environment (or .env). CHURN_API_KEYS, comma-separated keys for the X-API-Key "
    "header, is required: without it the API refuses to start, unless CHURN_API_ALLOW_ANONYMOUS=true "
    "(then anyone who reaches the port reads every score). Request limits, per worker: "
    f"CHURN_API_MAX_BODY_BYTES (default {_DEFAULTS['api_max_body_bytes'].default}; larger: 413), "
    f"CHURN_API_MAX_HEADER_BYTES (default {_DEFAULTS['api_max_header_bytes'].default}, request line and "
    f"headers; larger: 431), CHURN_API_REQUEST_TIMEOUT_SECONDS (default "
    f"{_DEFAULTS['api_request_timeout_seconds'].default:g}; a request not received whole in time: 408); "
    f"at most {CONNECTIONS_PER_WORKER} connections per worker (more: 503), idle keep-alive closed after "
    f"{KEEP_ALIVE_SECONDS} s."
)


def _worker(host: str, port: int, log_level: str) -> None:
    """One uvicorn server on its own socket; exits non-zero when the app fails to start."""
    import uvicorn

    settings = load_settings()
    config = server_config(
        "api.main:app",
        log_level=log_level,
        max_header_bytes=settings.api_max_header_bytes,
        request_timeout_seconds=settings.api_request_timeout_seconds,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[_listen(host, port)])
    if not server.started:
        sys.exit(3)


def _mark_dead(pid: int) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def main() -> int:
    """Start the workers and supervise them until a signal or a worker's death."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EPILOG)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    _listen(args.host, args.port).close()  # fail here, once, if the port is taken
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(args.host, args.port, args.log_level), daemon=False)
        for _ in range(args.workers)
    ]
    for worker in workers:
        worker.start()
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.is_alive() and worker.pid:
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while any(w.is_alive() for w in workers) or (code == 0 and not stopping):
        for worker in workers:
            if not worker.is_alive() and worker.exitcode is not None and not stopping:
                print(
                    f"api.serve: worker {worker.pid} exited with {worker.exitcode}; stopping", file=sys.stderr
                )
                code = 1
                stop(signal.SIGTERM, None)
        time.sleep(0.2)
    for worker in workers:
        if worker.pid:
            _mark_dead(worker.pid)
    return code


if __name__ == "__main__":
    sys.exit(main())
