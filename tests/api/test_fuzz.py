"""Schema-driven fuzzing of the API: requests generated from its OpenAPI document never get a 5xx.

The API runs over HTTP with its lifespan, on real PostgreSQL with the published days of `published`, with
an API key configured and sent, so the generated requests reach the handlers rather than stop at the key
check. Valid and invalid requests (schemathesis's positive and negative modes) for every operation,
bounded to about forty seconds by a number of examples per operation and mode, without shrinking. Every
operation is fuzzed even after a failure, and the failing requests are listed together.

(schemathesis's lazy `from_fixture` loader does not run under this pytest, and its eager `parametrize`
would build the published database once per operation: the operations are iterated here instead.)
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api.main import create_app
from tests.api.conftest import Published
from tests.conftest import LiveServer

API_KEY = "fuzz-key"
EXAMPLES = 100  # per operation and generation mode: about forty seconds in all


def fuzz(operation: object, mode: GenerationMode, statuses: Counter[tuple[str, int]]) -> None:
    """Send generated requests of one operation; raises at the first 5xx, naming the request. An
    operation without inputs has no invalid request to generate."""

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))  # type: ignore[attr-defined]
    def send(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            headers={"X-API-Key": API_KEY}, checks=[not_a_server_error], timeout=30
        )
        statuses[mode.value, response.status_code] += 1

    try:
        send()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, "no valid request can be generated"  # nothing to make invalid


def describe(error: BaseException) -> str:
    """A failure with its notes (schemathesis adds the request as a curl command) and sub-failures."""
    parts = [str(error), *getattr(error, "__notes__", [])]
    return "\n".join(parts + [describe(e) for e in getattr(error, "exceptions", [])])


@pytest.mark.postgres
@pytest.mark.slow
def test_generated_requests_never_get_a_server_error(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_API_KEYS", API_KEY)
    failures, statuses = [], Counter[tuple[str, int]]()
    with LiveServer(create_app()) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=30)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 5, "the schema lost its operations"
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(operation, mode, statuses)
                except Exception as error:  # every failing operation is reported at the end
                    failures.append(f"{operation.label} ({mode.value}): {describe(error)}")
    assert not failures, "\n\n".join(failures)
    positive = {status for (mode, status) in statuses if mode == GenerationMode.POSITIVE.value}
    # valid requests carry the key, so they reach the handlers (negative ones may drop the header)
    assert positive.isdisjoint({401, 403}) and 200 in positive, statuses
