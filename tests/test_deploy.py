"""Production settings: strict, and a missing secret is a crash, not a default."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.testenv import ROOT

pytestmark = pytest.mark.slow  # manage.py processes


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_ALLOWED_HOSTS="images.example.com",
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_email_url_is_warned_that_mail_reaches_no_one():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_ALLOWED_HOSTS="images.example.com",
    )  # fmt: skip
    assert result.returncode != 0
    assert "tenants.W001" in result.stdout + result.stderr


def test_production_without_a_secret_key_refuses_to_start():
    result = manage("check", DJANGO_ENV="production", DJANGO_SECRET_KEY="", DJANGO_ALLOWED_HOSTS="images.example.com")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr
