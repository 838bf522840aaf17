"""Serve `api.main:app` with N uvicorn worker processes, each on its own SO_REUSEPORT socket.

`uvicorn --workers N` shares one listening socket and lets the workers race for `accept()`: with
keep-alive clients the connections pile onto one worker (measured here: 23 of 32 on one of two workers),
and its queue sets the tail latency. With a socket per worker and SO_REUSEPORT, the kernel spreads new
connections over the workers by hash. A worker that dies stops the others (the supervisor - compose,
systemd, Kubernetes - restarts the service); SIGTERM/SIGINT stop all gracefully.

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


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config("api.main:app", log_level=log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[_listen(host, port)])


def _mark_dead(pid: int) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def main() -> int:
    """Start the workers and supervise them until a signal or a worker's death."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    while any(w.is_alive() for w in workers):
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
