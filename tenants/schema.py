"""The OpenAPI description of what every REST view shares: the token scheme, and the error answers
that TenantScopedMixin itself gives (no or a bad token, a role that may not write, an id that is not
the tenant's, too many bad tokens), so that no operation's documented answers stop at its successes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "tenants.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` or `Bearer <key>`; keys are made per tenant on the Tokens page.",
        }


ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# A bad parameter or field is named with its messages; a body that cannot be parsed at all is a `detail`.
VALIDATION_ERRORS: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}

RETRY_AFTER: dict[str, Any] = {
    "schema": {"type": "integer", "minimum": 0},
    "description": "Seconds to wait before trying again.",
}

ERROR_DESCRIPTIONS = {
    "400": "A parameter or field is invalid; each is named with what is wrong.",
    "401": "No token, or an unknown or revoked one.",
    "403": "The key's user's role in its tenant may not do this, or the key's scope does not cover it "
    "(the answer names the scope needed: read, write or admin).",
    "404": "No such object in the token's tenant: the same answer for another tenant's id.",
    "415": "The request body is not of a documented media type.",
    "429": "Too many invalid tokens from this address, or the key's rate limit (API_RATE_LIMIT) or its "
    "tenant's (API_TENANT_RATE_LIMIT) is used up: the answer says which; retry after Retry-After seconds.",
}


class TenantScopedSchema(AutoSchema):
    """Adds the errors of TenantScopedMixin to each operation's responses; a view documents its own
    further errors (409, 503...) with `extend_schema`."""

    def _error_codes(self) -> list[str]:
        codes = ["401", "429"]
        has_body = self.method in {"POST", "PUT", "PATCH"}
        has_query = any(parameter["in"] == "query" for parameter in self._get_parameters())
        if has_body or has_query:
            codes.append("400")
        if has_body:
            codes.append("415")
        required = getattr(self.view, "required_permission", None)
        if required is not None and required(self.view.request) is not None:
            codes.append("403")
        # a page past the end of a paginated list is a 404 too
        paginated_list = self._is_list_view() and getattr(self.view, "pagination_class", None) is not None
        if "{" in self.path or paginated_list:
            codes.append("404")
        return codes

    # drf-spectacular's hook for an operation's responses; `extend_schema(responses=...)` replaces
    # get_response_serializers, so the errors are added after it, where they always apply.
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                schema = VALIDATION_ERRORS if code == "400" else ERROR
                responses[code] = {
                    "content": {"application/json": {"schema": schema}},
                    "description": ERROR_DESCRIPTIONS[code],
                }
                if code == "429":
                    responses[code]["headers"] = {"Retry-After": RETRY_AFTER}
        return dict(sorted(responses.items()))
