"""Per-key and per-tenant request rates (API_RATE_LIMIT, API_TENANT_RATE_LIMIT), counted in the
shared cache: a 429 says which limit and when to retry, an upload counts by file, and one key's
flood slows neither another tenant nor (until the tenant's limit) the tenant's other keys."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tenants.throttling import SlidingWindowThrottle
from tenants.tokens import api_token_create
from tests.conftest import keyed_client
from tests.factories import image_bytes

pytestmark = pytest.mark.django_db


def key_of(user, tenant):
    return keyed_client(api_token_create(tenant=tenant, user=user, name="k")[1])


def test_a_key_past_its_limit_gets_429_naming_it_while_other_keys_and_tenants_go_on(
    settings, acme, globex, bob, alice, charlie
):
    settings.API_RATE_LIMIT = "3/minute"
    flooding, neighbour, other_tenant = key_of(bob, acme), key_of(alice, acme), key_of(charlie, globex)
    assert [flooding.get("/api/v1/images/").status_code for _ in range(3)] == [200, 200, 200]
    refused = flooding.get("/api/v1/images/")
    assert refused.status_code == 429
    assert "API_RATE_LIMIT" in refused.json()["detail"] and "3/minute" in refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 120  # the weighted previous window may reach into the next
    assert flooding.get("/api/v1/images/").status_code == 429
    assert neighbour.get("/api/v1/images/").status_code == 200
    assert other_tenant.get("/api/v1/images/").status_code == 200


def test_a_tenant_past_its_limit_gets_429_naming_the_tenant_limit_and_other_tenants_go_on(
    settings, acme, globex, bob, alice, charlie
):
    settings.API_TENANT_RATE_LIMIT = "4/minute"
    first, second = key_of(bob, acme), key_of(alice, acme)
    assert [c.get("/api/v1/images/").status_code for c in (first, second, first, second)] == [200] * 4
    refused = second.get("/api/v1/images/")
    assert refused.status_code == 429 and "API_TENANT_RATE_LIMIT" in refused.json()["detail"]
    assert int(refused["Retry-After"]) >= 1
    assert key_of(charlie, globex).get("/api/v1/images/").status_code == 200


def test_refused_requests_do_not_use_up_the_tenants_budget(settings, acme, bob, alice):
    settings.API_RATE_LIMIT = "2/minute"
    settings.API_TENANT_RATE_LIMIT = "4/minute"
    flooding, neighbour = key_of(bob, acme), key_of(alice, acme)
    statuses = [flooding.get("/api/v1/images/").status_code for _ in range(10)]
    assert statuses == [200, 200] + [429] * 8
    assert [neighbour.get("/api/v1/images/").status_code for _ in range(2)] == [200, 200]


def files(n: int) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"{i}.png", image_bytes(color=(i, 9, 9))) for i in range(n)]


def test_an_upload_counts_by_file(settings, acme, bob):
    settings.API_RATE_LIMIT = "3/minute"
    client = key_of(bob, acme)
    too_many = client.post("/api/v1/images/", {"file": files(4)}, format="multipart")
    assert too_many.status_code == 429 and "API_RATE_LIMIT" in too_many.json()["detail"]
    assert client.post("/api/v1/images/", {"file": files(3)}, format="multipart").status_code == 207
    assert client.get("/api/v1/images/").status_code == 429


def test_the_429_is_in_the_schema_with_retry_after(client):
    schema = client.get("/api/schema/?format=json").json()
    answer = schema["paths"]["/api/v1/images/"]["get"]["responses"]["429"]
    assert "Retry-After" in answer["headers"] and "API_TENANT_RATE_LIMIT" in answer["description"]


@pytest.mark.parametrize(
    ("limit", "elapsed", "previous", "others", "cost", "expected"),
    [
        (10, 30, 10, 5, 1, 42),  # 10*(1-(30+t)/60)+6 <= 10 from t=6+? -> 60*(1-4/10)-30 = 6
        (10, 30, 0, 10, 1, 30 + 6),  # this window is full: the next one, once 1/10 of it slid by
        (10, 30, 0, 0, 11, 30),  # a request larger than the limit: the end of this window
    ],
)
def test_the_wait_is_when_the_request_would_fit(limit, elapsed, previous, others, cost, expected):
    wait = SlidingWindowThrottle._wait(limit, 60, elapsed, previous, others, cost)
    if previous:
        expected = 60 * (1 - (limit - others - cost) / previous) - elapsed
    assert wait == pytest.approx(expected)
