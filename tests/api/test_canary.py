"""The canary (issue 23, item 4): a share of POST /predict answered by the challenger, sticky per msno,
set in the registry and picked up without a restart; the response and the log name the version."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest

from api.main import create_app
from bench.common import events_of_user
from churn.errors import ChurnError
from churn.lake import Lake
from churn.model import registry
from churn.model.canary import canary_bucket, parse_share
from churn.model.registry import CANARY_TAG
from churn.model.registry import set_canary_share as set_share
from churn.settings import Settings
from tests.api.conftest import NEW_DAY, Published
from tests.conftest import LiveServer

REQUESTS = 2000
SHARE = 0.3


def _msno(i: int) -> str:
    return base64.b64encode(i.to_bytes(32, "big")).decode()


@pytest.fixture
def challenger(published: Published) -> Iterator[int]:
    """A challenger version (the champion's artifact registered again), removed afterwards."""
    settings = published.settings
    client = registry.client(settings)
    champion = registry.alias_version(settings, registry.CHAMPION)
    source = client.get_model_version(settings.model_name, str(champion))
    copy = client.create_model_version(settings.model_name, source.source, run_id=source.run_id)
    client.set_registered_model_alias(settings.model_name, registry.CHALLENGER, copy.version)
    try:
        yield int(copy.version)
    finally:
        client.delete_registered_model_alias(settings.model_name, registry.CHALLENGER)


def _wait_for(server: LiveServer, body: dict, role: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.post(f"{server.url}/predict", json=body).json()["served_by"] == role:
            return
        time.sleep(0.1)
    raise AssertionError(f"the API did not switch to {role}")


def test_the_canary_share_is_honoured_sticky_and_stops_at_zero(
    published: Published, challenger: int, small_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_MODEL_REFRESH_SECONDS", "0.2")
    settings: Settings = published.settings
    champion = registry.alias_version(settings, registry.CHAMPION)
    events = events_of_user(small_lake, published.both, NEW_DAY) | {"as_of": NEW_DAY.isoformat()}
    assert set_share(settings, SHARE) == challenger
    answers: dict[str, tuple[int, str]] = {}
    with LiveServer(create_app()) as server, httpx.Client(base_url=server.url) as http:
        for i in range(REQUESTS):
            body = events | {"msno": _msno(i)}
            answer = http.post("/predict", json=body).json()
            answers[body["msno"]] = (answer["model_version"], answer["served_by"])
        again = {m: http.post("/predict", json=events | {"msno": m}).json() for m in list(answers)[:200]}
        metrics = http.get("/metrics").text
        set_share(settings, 0.0)
        _wait_for(
            server, events | {"msno": next(m for m, a in answers.items() if a[1] == "canary")}, "champion"
        )
        stopped = [http.post("/predict", json=events | {"msno": m}).json() for m in list(answers)[:300]]
    canary = [m for m, (version, role) in answers.items() if role == "canary"]
    # within 4 standard deviations of the share (binomial, 2,000 requests): 0.3 +- 0.041
    assert abs(len(canary) / REQUESTS - SHARE) < 4 * (SHARE * (1 - SHARE) / REQUESTS) ** 0.5
    assert all(answers[m][0] == challenger for m in canary)
    assert all(version == champion for version, role in answers.values() if role == "champion")
    assert {m for m in answers if canary_bucket(m) < SHARE} == set(canary)  # the rule the README states
    assert all((a["model_version"], a["served_by"]) == answers[m] for m, a in again.items())  # sticky
    assert f'churn_api_predictions_by_version_total{{role="canary",version="{challenger}"}}' in metrics
    assert {a["served_by"] for a in stopped} == {"champion"}


def test_a_share_is_a_number_between_0_and_1(published: Published, challenger: int) -> None:
    with pytest.raises(ChurnError, match="between 0 and 1"):
        set_share(published.settings, 1.5)
    assert parse_share("0.25") == 0.25 and parse_share("nope") == 0.0 and parse_share("2") == 0.0
    client = registry.client(published.settings)
    assert (
        client.get_model_version(published.settings.model_name, str(challenger)).tags.get(CANARY_TAG) is None
    )
