"""A champion trained on another feature spec: the API refuses it exactly as nightly scoring does (one
loader, `churn.model.champion`), over HTTP with the app's lifespan."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api.main import create_app
from churn.features.spec import SPEC_HASH
from churn.lake import Lake
from churn.model import registry
from churn.model.champion import FeatureSpecError
from churn.scores.scoring import score
from churn.settings import Settings
from tests.api.conftest import NEW_DAY, Published
from tests.conftest import LiveServer

OTHER_SPEC = "0" * len(SPEC_HASH)


@pytest.fixture
def other_spec_champion(published: Published, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A registered model whose only version (the trained champion's artifact) is tagged with another
    feature spec and is its champion; the API is pointed at it. Yields its settings."""
    settings = published.settings
    client = registry.client(settings)
    good = registry.alias_version(settings, registry.CHAMPION)
    details = client.get_model_version(settings.model_name, str(good))
    name = f"{settings.model_name}-other-spec"
    client.create_registered_model(name)
    version = client.create_model_version(name, details.source, run_id=details.run_id,
                                          tags={**details.tags, "feature_spec_hash": OTHER_SPEC})  # fmt: skip
    client.set_registered_model_alias(name, registry.CHAMPION, version.version)
    monkeypatch.setenv("CHURN_MODEL_NAME", name)
    try:
        yield settings.model_copy(update={"model_name": name})
    finally:
        client.delete_registered_model(name)


def test_the_api_refuses_a_champion_scoring_refuses_and_names_the_reason(
    published: Published, other_spec_champion: Settings
) -> None:
    with pytest.raises(FeatureSpecError) as refused:
        score(Lake(other_spec_champion.lake_url), other_spec_champion, NEW_DAY, "score-other-spec")
    reason = f"was trained on feature spec {OTHER_SPEC}, this code builds {SPEC_HASH}"
    assert reason in str(refused.value)
    with LiveServer(create_app()) as server:
        champion = httpx.get(f"{server.url}/models/champion")
        ready = httpx.get(f"{server.url}/readyz")
        predicted = httpx.post(f"{server.url}/predict", json={"msno": published.both})
    for answer in (champion, predicted):
        assert answer.status_code == 503, answer.text
        assert reason in answer.json()["detail"], answer.text
    assert ready.status_code == 503 and ready.json()["model"] == "unavailable", ready.text
