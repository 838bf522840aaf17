"""API keys fail closed: no key configured stops start-up, unless anonymous access is asked for explicitly."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from tests.api.conftest import Published, path_of
from tests.conftest import LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_start_without_api_keys_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/absent")
    command = [sys.executable, "-m", "api.serve", "--port", str(free_port()), "--workers", "1"]
    server = subprocess.Popen(command, env=dict(os.environ), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.send_signal(signal.SIGTERM)  # the supervisor stops its worker
        server.communicate(timeout=30)
        pytest.fail("the API kept serving without CHURN_API_KEYS")
    assert server.returncode != 0
    assert "CHURN_API_KEYS" in stderr and "CHURN_API_ALLOW_ANONYMOUS" in stderr


def test_anonymous_opt_out_warns_and_readyz_says_so(
    published: Published, monkeypatch: pytest.MonkeyPatch, churn_log: list[logging.LogRecord]
) -> None:
    monkeypatch.setenv("CHURN_API_ALLOW_ANONYMOUS", "true")
    with LiveServer(create_app()) as server:
        ready = httpx.get(f"{server.url}/readyz").json()
        score = httpx.get(f"{server.url}/scores/{path_of(published.both)}")
    assert ready["auth"] == "anonymous"
    assert score.status_code == 200
    warnings = [r.getMessage() for r in churn_log if r.levelno == logging.WARNING]
    assert any("CHURN_API_ALLOW_ANONYMOUS" in message for message in warnings), warnings


def test_with_keys_requests_are_checked_and_readyz_says_api_key(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_API_KEYS", "first-key")
    monkeypatch.setenv("CHURN_API_ALLOW_ANONYMOUS", "true")  # keys present: they are checked regardless
    target = f"/scores/{path_of(published.both)}"
    with LiveServer(create_app()) as server:
        ready = httpx.get(f"{server.url}/readyz").json()
        missing = httpx.get(server.url + target)
        wrong = httpx.get(server.url + target, headers={"X-API-Key": "nope"})
        right = httpx.get(server.url + target, headers={"X-API-Key": "first-key"})
    assert ready["auth"] == "api-key"
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 403, 200)
