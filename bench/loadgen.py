"""A small HTTP/1.1 load generator (asyncio + raw sockets, keep-alive), run as its own process.

`python -m bench.loadgen --url http://127.0.0.1:8000 --paths paths.txt --connections 32 --seconds 10`
sends requests round-robin over the paths from N persistent connections for the given time and prints one
JSON line: requests, errors (non-2xx), requests/s, p50/p90/p99/max latency in ms. With `--body FILE` it
POSTs that JSON body to every path instead of GETs; `--header "X-API-Key: ..."` (repeatable) adds a header
to every request. A raw-socket client keeps the generator's own cost per
request to a few microseconds, so on a shared 2-core machine it takes as little CPU from the server as a
Python client can.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from pathlib import Path
from urllib.parse import urlsplit


async def _worker(
    host: str,
    port: int,
    requests: itertools.cycle,
    deadline: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            payload = next(requests)
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not 200 <= status < 300:
                errors.append(status)
    finally:
        writer.close()


def _requests(host: str, paths: list[str], body: bytes | None, headers: list[str]) -> list[bytes]:
    extra = "".join(f"{line}\r\n" for line in headers)
    if body is None:
        return [f"GET {p} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode() for p in paths]
    head = "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n"
    return [head.format(p, host, len(body), extra).encode() + body for p in paths]


async def run(
    url: str, paths: list[str], connections: int, seconds: float, body: bytes | None, headers: list[str]
) -> dict:
    """Drive the server; returns the figures."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = itertools.cycle(_requests(host, paths, body, headers))
    latencies: list[float] = []
    errors: list[int] = []
    warmup = time.perf_counter() + 1.0
    await asyncio.gather(*(_worker(host, port, requests, warmup, [], []) for _ in range(connections)))
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_worker(host, port, requests, deadline, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return (
            round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)
            if ordered
            else float("nan")
        )

    rate = round(len(latencies) / elapsed, 1)
    return {
        "requests": len(latencies), "errors": len(errors), "requests_per_s": rate,
        "p50_ms": quantile(0.50), "p90_ms": quantile(0.90), "p99_ms": quantile(0.99),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else float("nan"), "connections": connections,
    }  # fmt: skip


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--paths", required=True, help="file with one request path per line")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--body", help="JSON body file: POST it to every path")
    parser.add_argument("--header", action="append", default=[], help='"Name: value" added to every request')
    args = parser.parse_args()
    paths = [line.strip() for line in Path(args.paths).read_text().splitlines() if line.strip()]
    body = Path(args.body).read_bytes() if args.body else None
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(
        json.dumps(asyncio.run(run(args.url, paths, args.connections, args.seconds, body, args.header))),
        flush=True,
    )


if __name__ == "__main__":
    main()
