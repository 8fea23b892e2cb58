"""schemathesis over the API's own OpenAPI schema (/api/schema/, served by drf-spectacular), in process
through Django's WSGI handler, with a valid token of a tenant that has ready images: for every
operation, generated requests (valid and invalid ones) never meet a server error, and every answer's
status, content type, headers and body are the ones the schema documents.

No check is left out: the five below are what the schema promises about each single answer. The
others schemathesis has judge the API's behaviour across requests or against assumptions about it
(e.g. that every schema-valid request succeeds, while an upload of random bytes rightly fails with
400); those rules are tested directly in tests/search/test_api.py and tests/test_access_matrix.py.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks

from tests.two_tenants import PICTURES, Seeded, picture_bytes, seed_tenant

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # a fuzzer: 40 s on 2 cores

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def tenant() -> Seeded:
    return seed_tenant("umbra", "Umbra Research")


def test_the_schema_documents_every_api_route():
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert operations == {
        ("GET", "/api/v1/images/"),
        ("POST", "/api/v1/images/"),
        ("GET", "/api/v1/images/{id}/"),
        ("DELETE", "/api/v1/images/{id}/"),
        ("PATCH", "/api/v1/images/{id}/"),
        ("GET", "/api/v1/images/{id}/file/"),
        ("GET", "/api/v1/images/{id}/thumbnail/"),
        ("GET", "/api/v1/images/{id}/similar/"),
        ("GET", "/api/v1/images/{id}/duplicates/"),
        ("GET", "/api/v1/search/"),
        ("POST", "/api/v1/search/"),
        ("GET", "/api/v1/labels/"),
        ("PUT", "/api/v1/labels/"),
        ("GET", "/api/v1/webhooks/"),
        ("POST", "/api/v1/webhooks/"),
        ("GET", "/api/v1/webhooks/{id}/"),
        ("PATCH", "/api/v1/webhooks/{id}/"),
        ("DELETE", "/api/v1/webhooks/{id}/"),
        ("GET", "/api/v1/webhooks/{id}/deliveries/"),
        ("GET", "/api/v1/members/"),
        ("GET", "/api/v1/members/{id}/"),
        ("PATCH", "/api/v1/members/{id}/"),
        ("DELETE", "/api/v1/members/{id}/"),
        ("GET", "/api/v1/invitations/"),
        ("POST", "/api/v1/invitations/"),
        ("GET", "/api/v1/invitations/{id}/"),
        ("DELETE", "/api/v1/invitations/{id}/"),
        ("POST", "/api/v1/invitations/{id}/resend/"),
    }


def call(case, tenant: Seeded) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {tenant.key}"}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_its_schema_says(case, tenant):
    """Every phase (the schema's boundary values, then random valid and invalid requests)."""
    call(case, tenant)


@schema.given(image=st.integers(0, len(PICTURES) - 1))
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_on_the_tenants_own_images_answers_as_its_schema_says(case, image, tenant):
    """Random requests about one of the tenant's images, and with a real picture where a file goes:
    ids drawn from the schema are random uuids (404s) and files random bytes (400s), so only these
    reach the successful answers (the image, its file and thumbnail, results, an upload)."""
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = str(tenant.images[image].id)
        if case.path.startswith("/api/v1/webhooks/"):
            case.path_parameters["id"] = str(tenant.webhook.id)
    if isinstance(case.body, dict):
        for field in ("file", "image"):
            if field in case.body:
                case.body[field] = picture_bytes(PICTURES[image][0])
    call(case, tenant)
