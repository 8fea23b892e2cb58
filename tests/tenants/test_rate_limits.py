from __future__ import annotations

from django.urls import reverse
from rest_framework.test import APIClient

from tenants.tokens import api_token_create
from tests.factories import PASSWORD
from tests.support.processes import free_port


def test_repeated_failed_logins_lock_the_client_out_even_with_the_right_password(acme, bob, client, settings):
    settings.AUTH_FAILURE_LIMIT = 3
    for _ in range(3):
        assert client.post(reverse("login"), {"username": "bob", "password": "wrong"}).status_code == 200
    blocked = client.post(reverse("login"), {"username": "bob", "password": PASSWORD})
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_successful_login_clears_the_count(acme, bob, client, settings):
    settings.AUTH_FAILURE_LIMIT = 3
    client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    assert client.post(reverse("login"), {"username": "bob", "password": PASSWORD}).status_code == 302
    client.logout()
    client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    assert client.post(reverse("login"), {"username": "bob", "password": PASSWORD}).status_code == 302


def test_repeated_bad_tokens_are_throttled_but_a_valid_key_from_the_same_address_still_works(acme, bob, settings):
    """Past the limit, guesses from an address are refused; an integration with a valid key behind the
    same address (a NAT, a proxy) is not locked out by whoever keeps failing."""
    settings.AUTH_FAILURE_LIMIT = 3
    _, key = api_token_create(tenant=acme, user=bob, name="x")
    guesser = APIClient()
    for attempt in range(3):
        guesser.credentials(HTTP_AUTHORIZATION=f"Token isk_guess{attempt}")
        assert guesser.get("/api/v1/images/").status_code == 401
    guesser.credentials(HTTP_AUTHORIZATION="Token isk_guess-right-this-time")
    response = guesser.get("/api/v1/images/")
    assert response.status_code == 429
    assert "Retry-After" in response
    guesser.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert guesser.get("/api/v1/images/").status_code == 200


def test_with_the_cache_unreachable_logins_and_tokens_still_work_and_still_check(acme, bob, client, settings):
    """Redis down must not turn every login and API call into a server error: the limiter steps
    aside, while passwords and keys are still checked."""
    port = free_port()  # nothing listens there
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    _, key = api_token_create(tenant=acme, user=bob, name="x")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/images/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token isk_guess")
    assert api.get("/api/v1/images/").status_code == 401
    assert client.post(reverse("login"), {"username": "bob", "password": "wrong"}).status_code == 200
    assert client.post(reverse("login"), {"username": "bob", "password": PASSWORD}).status_code == 302
