"""Walks every URL pattern Django knows (read from the resolver, through every include, the admin's
too) as callers who must learn nothing of Umbra: a member of another tenant, an anonymous visitor and,
on the operators' admin, Umbra's own owner, who is not staff.

Each pattern's arguments are filled from Umbra's real objects by the table FILLERS, keyed by the
argument's name; each argument also gets a value naming nothing (a random slug, uuid or id). A pattern
with an argument the table cannot fill fails the walk, so a new route is covered the day it is added.

Every pattern is requested with GET, POST and DELETE. A method a view does not take answers 405,
which is fine as long as it is the same answer as for the missing id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.admin import ModelAdmin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.files.storage import default_storage
from django.db.models import Model, UUIDField
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from ingestion.models import BulkAction, ImageAsset, VectorSpace
from tenants.audit import Actor, audit_record
from tenants.invitations import hash_token, invitation_create
from tenants.models import ApiToken, AuditAction, AuditEvent, Invitation, Membership, Tenant, TokenScope
from tenants.tokens import api_token_create
from tests.testenv import SAMPLES
from tests.two_tenants import Seeded, leaked, seed_two_tenants
from vectors import index
from webhooks.models import WebhookEndpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # exhaustive: every route as every outsider

METHODS = ("get", "post", "delete")

# Routes anyone may open. They are still requested (GET) and must show nothing of Umbra.
# Static files are served by whitenoise's middleware and media are not served at all: neither is a
# URL pattern (see test_stored_files_are_not_reachable_by_their_storage_path).
PUBLIC = {
    "login": "where anonymous visitors are sent to log in",
    "logout": "ends whoever's session; GET is refused (405) and POST would end the walker's own session",
    "schema": "the OpenAPI description is public (SERVE_PERMISSIONS AllowAny) and describes no tenant's data",
    "api-docs": "Swagger UI over the public schema",
    "admin:login": "where operators log in; non-staff are sent here",
    "invitation-accept": "an invitation's link: a new person signs up there; the page names nothing until the "
    "link is used, and to a signed-in account it is not for it is the 404 of an unknown link",
    "password_reset": "where anyone asks for a password reset link by e-mail",
    "password_reset_done": "says the link is on its way, whether or not the address has an account",
    "password_reset_confirm": "a reset link: an invalid one (the walk has no real one) is one page for every user",
    "password_reset_complete": "says the new password works",
}


@dataclass(frozen=True)
class Route:
    pieces: tuple[RoutePattern | RegexPattern, ...]
    pattern: URLPattern
    namespace: str

    @property
    def name(self) -> str:
        name = self.pattern.name or f"<unnamed {self.text}>"
        return f"{self.namespace}:{name}" if self.namespace else name

    @property
    def text(self) -> str:
        return "".join(str(piece) for piece in self.pieces)

    @property
    def arguments(self) -> list[str]:
        return [name for piece in self.pieces for name in piece.regex.groupindex]

    @property
    def kind(self) -> str:
        if self.name in PUBLIC:
            return "public"
        if self.namespace.split(":")[0] in {"admin", "api"}:
            return self.namespace.split(":")[0]
        return "page"


def all_routes() -> list[Route]:
    def walk(patterns: list[Any], pieces: tuple[Any, ...], namespace: str) -> Iterator[Route]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else entry.namespace
                yield from walk(entry.url_patterns, (*pieces, entry.pattern), inner or namespace)
            else:
                assert isinstance(entry, URLPattern)
                yield Route((*pieces, entry.pattern), entry, namespace)

    return list(walk(get_resolver().url_patterns, (), ""))


class CannotFill(Exception):
    pass


def model_of(route: Route) -> type[Model] | None:
    """The model a route's object id names: the admin's model, or the DRF view's queryset's."""
    callback = route.pattern.callback
    # ModelAdmin.get_urls marks its views with `model_admin`; views a ModelAdmin adds itself through
    # admin_site.admin_view (the user's password form) wrap one of its bound methods.
    wrapped: Any = callback
    while wrapped is not None:
        model_admin = getattr(wrapped, "model_admin", None) or getattr(wrapped, "__self__", None)
        if isinstance(model_admin, ModelAdmin):
            return model_admin.model  # type: ignore[no-any-return]
        wrapped = getattr(wrapped, "__wrapped__", None)
    queryset = getattr(getattr(callback, "cls", None), "queryset", None)
    if queryset is not None:
        return queryset.model  # type: ignore[no-any-return]
    if "content_type_id" in route.arguments:  # the admin's "view on site" names its model by content type
        return ImageAsset
    return None


def missing_pk(model: type[Model]) -> str:
    return str(uuid.uuid4()) if isinstance(model._meta.pk, UUIDField) else "2147480000"


def umbra_object(world: World, route: Route) -> tuple[str, str]:
    model = model_of(route)
    owned: dict[type[Model], Model | None] = {
        Tenant: world.umbra.tenant,
        Membership: world.umbra.membership,
        ApiToken: world.umbra.token,
        ImageAsset: world.umbra.images[0],
        type(world.umbra.owner): world.umbra.owner,
        Group: world.group,
        WebhookEndpoint: world.umbra.webhook,
        AuditEvent: world.audit_event,
        Invitation: world.invitation,
        # No tenant's: the models the index holds vectors of (operators see them in the admin).
        VectorSpace: VectorSpace.objects.get_or_create(
            key="walk-space", defaults={"model": "ViT-S-32", "pretrained": "random", "state": "retired"}
        )[0],
    }
    if model not in owned:
        raise CannotFill(f"no object of Umbra's for model {model}")
    return str(owned[model].pk), missing_pk(model)


# argument name -> (Umbra's real value, a value naming nothing)
FILLERS: dict[str, Callable[[World, Route], tuple[str, str]]] = {
    "tenant_slug": lambda world, route: (world.umbra.tenant.slug, f"no-such-tenant-{uuid.uuid4().hex[:8]}"),
    "asset_id": lambda world, route: (str(world.umbra.images[0].id), str(uuid.uuid4())),
    "token_id": lambda world, route: (str(world.umbra.token.pk), "2147480000"),
    "action_id": lambda world, route: (str(world.umbra.bulk_action.id), str(uuid.uuid4())),
    "endpoint_id": lambda world, route: (str(world.umbra.webhook.id), str(uuid.uuid4())),
    "member_id": lambda world, route: (str(world.umbra.membership.pk), "2147480000"),
    "invitation_id": lambda world, route: (str(world.invitation.pk), "2147480000"),
    "invitation_token": lambda world, route: (world.invitation_token, "n0-such-invitation-" + "x" * 24),
    "uidb64": lambda world, route: (urlsafe_base64_encode(force_bytes(world.umbra.owner.pk)), "MjE0NzQ4MDAwMA"),
    "token": lambda world, route: ("cz8e1a-0123456789abcdef0123456789abcdef",) * 2,  # no valid reset token
    "pk": umbra_object,
    "object_id": umbra_object,
    "id": umbra_object,
    "content_type_id": lambda world, route: (str(ContentType.objects.get_for_model(ImageAsset).pk),) * 2,
    "app_label": lambda world, route: ("tenants", "tenants"),
    "url": lambda world, route: ("no-such-page/", "no-such-page/"),
}


def fill(world: World, route: Route) -> tuple[dict[str, str], dict[str, str]]:
    real, missing = {}, {}
    for argument in route.arguments:
        if argument not in FILLERS:
            raise CannotFill(f"no filler for argument {argument!r}: add one to FILLERS")
        real[argument], missing[argument] = FILLERS[argument](world, route)
    return real, missing


def build(route: Route, values: dict[str, str]) -> str:
    """The path of `route` with `values` for its arguments, checked by resolving it back."""
    parts = []
    for piece in route.pieces:
        if isinstance(piece, RoutePattern):
            parts.append(re.sub(r"<(?:[^>:]+:)?([^>]+)>", lambda m: values[m[1]], str(piece)))
            continue
        text = str(piece).removeprefix("^").removesuffix("$")
        while match := re.search(r"\(\?P<(\w+)>", text):
            depth, end = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            text = text[: match.start()] + values[match[1]] + text[end:]
        parts.append(text.replace("\\", ""))
    path = "/" + "".join(parts)
    found = resolve(path)
    if found.func is not route.pattern.callback or {k: str(v) for k, v in found.kwargs.items()} != values:
        raise CannotFill(f"{path} does not resolve back to {route.name} with {values}")
    return path


@dataclass
class World:
    umbra: Seeded
    lumen: Seeded
    group: Group
    audit_event: AuditEvent
    invitation: Invitation
    invitation_token: str  # the link's token, known from the mail only
    lumen_admin_key: str  # Lumen's owner with the widest scope: only the tenant stands in the way


@pytest.fixture
def world() -> World:
    umbra, lumen = seed_two_tenants()
    event = audit_record(tenant=umbra.tenant, actor_user=umbra.owner, action=AuditAction.IMAGE_DELETED, target="umbra")
    actor = Actor(umbra.membership)
    invitation = invitation_create(actor=actor, email="umbra-guest@example.com", role="admin", base_url="http://x/")
    token = re.search(r"/accounts/invitations/([\w-]+)/", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
    _, lumen_admin_key = api_token_create(tenant=lumen.tenant, user=lumen.owner, name="admin", scope=TokenScope.ADMIN)
    group = Group.objects.create(name="umbra-editors")
    return World(umbra, lumen, group, event, invitation, token, lumen_admin_key)


def body(response: Any) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode("utf-8", "replace")


@dataclass(frozen=True)
class Seen:
    status: int
    location: str
    content_type: str
    allow: str
    body: str


CSRF_VALUE = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]+')


def seen(response: Any, replace: dict[str, str] | None = None) -> Seen:
    """What a caller can tell from a response; `replace` maps the missing values to the real ones, so
    that two answers that differ only by the id the caller sent compare equal."""
    # A form's CSRF token is masked afresh on every rendering: it tells nothing of Umbra.
    page = CSRF_VALUE.sub(r"\1…", body(response))
    fields = [response.get("Location", ""), response.get("Content-Type", ""), response.get("Allow", ""), page]
    for missing, real in (replace or {}).items():
        fields = [field.replace(missing, real) for field in fields]
    return Seen(response.status_code, *fields)


def request(client: Client, method: str, path: str) -> Any:
    return getattr(client, method)(path)


# (route, whether its arguments name one of Umbra's objects, the answer) -> what is wrong, if anything
Check = Callable[[Route, bool, Seen], str | None]


def walk(world: World, client: Client, routes: list[Route], check: Check, *, own_slug: str | None = None) -> list[str]:
    """Requests every route with Umbra's values and with missing ones; returns what went wrong."""
    problems = []
    for route in routes:
        try:
            real, missing = fill(world, route)
            if own_slug and "tenant_slug" in real:
                real["tenant_slug"] = missing["tenant_slug"] = own_slug
            real_path, missing_path = build(route, real), build(route, missing)
        except CannotFill as exc:
            problems.append(f"{route.name} ({route.text}): {exc}")
            continue
        for method in METHODS if route.kind != "public" else ("get",):
            answer = request(client, method, real_path)
            got = seen(answer)
            where = f"{method.upper()} {real_path} [{route.name}]"
            if answer.status_code >= 500:
                problems.append(f"{where}: {answer.status_code}")
            if found := leaked(got.body, world.umbra.secrets, allowed=real_path):
                problems.append(f"{where}: the body shows Umbra's {found}")
            if real != missing:
                reference = seen(
                    request(client, method, missing_path), dict(zip(missing.values(), real.values(), strict=True))
                )
                if differ := [f for f in Seen.__dataclass_fields__ if getattr(got, f) != getattr(reference, f)]:
                    problems.append(f"{where}: answers {got.status}, a missing id {reference.status}; {differ} differ")
            if route.kind != "public" and (trouble := check(route, real != missing, got)):
                problems.append(f"{where}: {trouble}")
    return problems


def umbra_intact(world: World) -> None:
    """Nothing the walk sent changed Umbra: rows, files, vectors and the token are all still there."""
    umbra = world.umbra
    images = ImageAsset.objects.for_tenant(umbra.tenant)
    assert {str(i) for i in images.values_list("id", flat=True)} == umbra.image_ids
    assert all(default_storage.exists(i.file.name) and default_storage.exists(i.thumbnail.name) for i in images)
    assert index.vector_ids(tenant=umbra.tenant) == umbra.image_ids
    assert ApiToken.objects.get(pk=umbra.token.pk).revoked_at is None
    webhook = WebhookEndpoint.objects.get(pk=umbra.webhook.pk)
    assert (webhook.url, webhook.events, webhook.is_active) == (umbra.webhook.url, umbra.webhook.events, True)
    assert BulkAction.objects.filter(tenant=umbra.tenant).count() == 1
    assert Membership.objects.filter(tenant=umbra.tenant).count() == 1
    pending = Invitation.objects.pending().get(pk=world.invitation.pk)
    assert pending.token_hash == hash_token(world.invitation_token)  # neither used, withdrawn nor re-sent
    assert Tenant.objects.filter(pk=umbra.tenant.pk, is_active=True).exists()


def routes_of(*kinds: str) -> list[Route]:
    return [route for route in all_routes() if route.kind in kinds]


def test_every_url_pattern_is_walked_and_can_be_filled(world):
    routes = all_routes()
    problems = []
    for route in routes:
        try:
            build(route, fill(world, route)[0])
        except CannotFill as exc:
            problems.append(f"{route.name} ({route.text}): {exc}")
    assert problems == []
    names = {route.name for route in routes}
    assert set(PUBLIC) <= names, f"whitelisted but gone: {set(PUBLIC) - names}"
    # The walk reaches the pages, the API, the admin and its per-model routes, not a subset.
    for expected in (
        "tenants:token-revoke",
        "ingestion:original",
        "api:image-thumbnail",
        "admin:tenants_tenant_change",
        "ingestion:bulk-action-status",
        "webhooks:detail",
        "api:webhook-deliveries",
        "tenants:member-remove",
        "tenants:invitation-withdraw",
        "invitation-accept",
        "api:member-detail",
        "api:invitation-detail",
    ):
        assert expected in names


def test_another_tenants_member_learns_nothing_of_umbra_on_any_route(world):
    """Pages as Lumen's owner (logged in), the API with Lumen's token, the admin as a non-staff user."""
    charlie = world.lumen.owner

    def check(route: Route, names_umbras: bool, got: Seen) -> str | None:
        if route.kind == "admin":
            return admin_refused(route, got)
        if names_umbras and got.status not in {404, 405}:
            return f"{got.status}, not 404"
        return None

    pages = Client()
    pages.force_login(charlie)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {world.lumen_admin_key}")
    problems = walk(world, pages, routes_of("page", "admin", "public"), check)
    problems += walk(world, api, routes_of("api"), check)
    assert problems == [], "\n".join(problems)
    umbra_intact(world)


def test_umbras_ids_under_the_other_tenants_own_slug_are_404_as_missing_ones(world):
    """/t/lumen/images/<Umbra's image>/..., /t/lumen/tokens/<Umbra's token>/revoke/: Lumen's owner
    reaches his own tenant, and Umbra's ids in it are missing, exactly like ids that never existed."""
    pages = Client()
    pages.force_login(world.lumen.owner)
    routes = [r for r in routes_of("page") if "tenant_slug" in r.arguments and len(r.arguments) > 1]
    assert routes, "the pages that take an object id besides the tenant"

    def check(route: Route, names_umbras: bool, got: Seen) -> str | None:
        return None if got.status in {404, 405} else f"{got.status}, not 404"

    problems = walk(world, pages, routes, check, own_slug=world.lumen.tenant.slug)
    assert problems == [], "\n".join(problems)
    umbra_intact(world)


def test_anonymous_visitors_are_sent_to_log_in_on_every_route(world):
    def check(route: Route, names_umbras: bool, got: Seen) -> str | None:
        if route.kind == "admin":
            return admin_refused(route, got)
        if route.kind == "api":
            return None if got.status == 401 else f"{got.status}, not 401"
        if got.status == 405:
            return None
        if got.status != 302 or not got.location.startswith("/accounts/login/?next="):
            return f"{got.status} {got.location}, not a redirect to the login page"
        return None

    problems = walk(world, Client(), routes_of("page", "admin", "public"), check)
    problems += walk(world, APIClient(), routes_of("api"), check)
    assert problems == [], "\n".join(problems)
    umbra_intact(world)


def admin_refused(route: Route, got: Seen) -> str | None:
    # The admin logs out only its staff; anyone else asking to log out is sent to its index.
    target = "/admin/" if route.name == "admin:logout" else "/admin/login/?next="
    if got.status == 302 and got.location.startswith(target):
        return None
    return f"{got.status} {got.location}, not the admin's login redirect"


def test_the_admin_is_closed_to_non_staff_even_umbras_own_owner(world):
    client = Client()
    client.force_login(world.umbra.owner)
    problems = walk(world, client, routes_of("admin"), lambda route, names_umbras, got: admin_refused(route, got))
    assert problems == [], "\n".join(problems)
    umbra_intact(world)


def test_the_other_tenants_lists_and_searches_show_only_its_own_images(world):
    """Lumen holds the same pictures, categories and shared tags as Umbra: a search or filter that
    forgot the tenant would return Umbra's copies, at the same scores."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {world.lumen.key}")
    lumen_ids, secrets = world.lumen.image_ids, world.umbra.secrets
    answers = [
        api.get("/api/v1/images/", {"page_size": 200}),
        api.get("/api/v1/images/", {"category": "pets", "tag": "dog"}),
        api.get("/api/v1/search/", {"q": "a photo of a dog", "limit": 200}),
        api.get("/api/v1/search/", {"q": "dog", "category": "pets", "tags": "dog", "source": "cookbook"}),
        api.get(f"/api/v1/images/{world.lumen.images[0].id}/similar/", {"limit": 200}),
    ]
    with (SAMPLES / "dog.jpg").open("rb") as picture:
        answers.append(api.post("/api/v1/search/?limit=200", {"image": picture}, format="multipart"))
    for answer in answers:
        assert answer.status_code == 200
        ids = {row["id"] for row in answer.json()["results"]}
        assert ids and ids <= lumen_ids
        assert leaked(body(answer), secrets) == []
    # Filters naming only Umbra's values find nothing, rather than Umbra's images.
    assert api.get("/api/v1/images/", {"tag": "umbra-only"}).json()["count"] == 0
    assert api.get("/api/v1/search/", {"q": "dog", "tags": "umbra-only"}).json()["results"] == []
    assert api.get("/api/v1/search/", {"q": "dog", "source": "umbra-cam"}).json()["results"] == []

    pages = Client()
    pages.force_login(world.lumen.owner)
    lumen = world.lumen.tenant.slug
    umbra_ids = ",".join(sorted(world.umbra.image_ids))
    status = pages.get(f"/t/{lumen}/images/status/", {"ids": umbra_ids})
    assert status.json() == {"images": []}
    for path, params in [
        (f"/t/{lumen}/search/", {"q": "a photo of a dog", "limit": 200}),
        (f"/t/{lumen}/images/{world.lumen.images[0].id}/similar/", {"limit": 200}),
        (f"/t/{lumen}/", {}),
        (f"/t/{lumen}/upload/", {}),
        (f"/t/{lumen}/tokens/", {}),
        ("/", {}),
    ]:
        page = pages.get(path, params, follow=True)
        assert page.status_code == 200
        assert leaked(body(page), secrets) == [], path
        assert world.lumen.images[1].original_filename in body(page) or "tokens" in path


def test_stored_files_are_not_reachable_by_their_storage_path(world):
    """Originals and thumbnails are served only through the views that check the tenant: the storage
    name (which holds the tenant's key) is no URL, not even for Umbra's own owner."""
    client = Client()
    client.force_login(world.umbra.owner)
    image = world.umbra.images[0]
    for name in (image.file.name, image.thumbnail.name):
        for prefix in ("/media-not-served/", "/media/", "/static/", "/"):
            assert client.get(prefix + name).status_code == 404
