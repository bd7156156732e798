"""Schemathesis over the app's own OpenAPI schema: generated requests never cause a server error.

Every operation gets property-generated requests (path and query parameters, bodies) as an
admin, as a nurse (scope denials) and without credentials, against the real database and the
real app; any 5xx fails. The run is bounded (about 40 examples per operation and identity).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.api import readings
from tests.api.conftest import Api
from tests.api.world import IN_YAKSU

pytestmark = [pytest.mark.db, pytest.mark.slow]

EXAMPLES = 40
_SENT = ("method", "url", "params", "headers", "json", "content", "data", "files")


def test_generated_requests_never_cause_server_errors(api: Api) -> None:
    async def seed(conn: Any) -> None:
        from datetime import UTC, datetime

        await readings.blood_pressure(conn, IN_YAKSU, datetime.now(UTC), 131, 84)

    api.db(seed)
    spec = api.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    api.client.cookies.clear()
    identities = {"admin": api.bearer("A01"), "nurse": api.bearer("N01"), "anonymous": {}}
    failures: list[str] = []
    seen: dict[int, int] = {}
    operations = 0

    def fuzz(operation: Any, who: str, auth: dict[str, str]) -> None:
        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url=str(api.client.base_url), headers=auth)
            sent = {k: v for k, v in kwargs.items() if k in _SENT}
            if isinstance(sent.get("data"), bytes | str):  # a raw body is content= in httpx
                sent["content"] = sent.pop("data")
            response = api.client.request(**sent)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{who} {case.method} {case.formatted_path} {sent.get('params')}: "
                    f"{response.status_code} {response.text[:200]}"
                )

        run()

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for who, auth in identities.items():
            fuzz(operation, who, auth)
    api.client.cookies.clear()  # identities travel in the Authorization header only
    assert operations >= 12  # metadata, reads, search, $lastn, Task update, transaction, audit
    assert failures == []
    assert {200, 400, 401, 404} <= set(seen)  # the requests reached the handlers, not only auth
