"""Mail goes through Django's mail API as EMAIL_URL says: parsed into Django's settings, and delivered to
a real SMTP server on loopback (plain with a login, STARTTLS, TLS from the start); without EMAIL_URL
messages are files under $DATA_DIR/mail/."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import send_mail

from config.env import email_from_url
from tests.support.smtp import SmtpServer

FILES = Path("/data/mail")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": FILES}),
        ("file:///srv/outbox", {"EMAIL_FILE_PATH": Path("/srv/outbox")}),
        ("console:", {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}),
        (
            "smtp://mailer:s%40cret@mail.example.com:2525",
            {
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "mail.example.com",
                "EMAIL_PORT": 2525,
                "EMAIL_HOST_USER": "mailer",
                "EMAIL_HOST_PASSWORD": "s@cret",
                "EMAIL_USE_TLS": False,
                "EMAIL_USE_SSL": False,
            },
        ),
        ("smtp://relay", {"EMAIL_HOST": "relay", "EMAIL_PORT": 25, "EMAIL_HOST_USER": ""}),
        ("smtp+tls://u:p@smtp.example.com", {"EMAIL_PORT": 587, "EMAIL_USE_TLS": True, "EMAIL_USE_SSL": False}),
        ("smtps://u:p@smtp.example.com", {"EMAIL_PORT": 465, "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": True}),
        ("smtp://relay?timeout=3", {"EMAIL_TIMEOUT": 3.0}),
    ],
)
def test_email_url_becomes_djangos_mail_settings(url, expected):
    settings = email_from_url(url, default_file_path=FILES)
    assert {key: settings[key] for key in expected} == expected


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "smtp://relay:port", "smtp://relay?tls=1"])
def test_a_bad_email_url_stops_the_process(url):
    with pytest.raises(ImproperlyConfigured):
        email_from_url(url, default_file_path=FILES)


def use_mail_url(settings, url: str) -> None:
    for key, value in email_from_url(url, default_file_path=FILES).items():
        setattr(settings, key, value)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the plain case, on loopback
@pytest.mark.parametrize("tls", ["", "starttls", "ssl"])
def test_mail_reaches_a_real_smtp_server_with_its_login(settings, tmp_path, monkeypatch, tls):
    with SmtpServer(tmp_path, login="mailer", password="p@ss:word", tls=tls) as smtp:
        if smtp.certificate:
            monkeypatch.setenv("SSL_CERT_FILE", str(smtp.certificate))  # trust the server's self-signed certificate
        use_mail_url(settings, smtp.url().replace("p@ss:word", "p%40ss%3Aword"))
        settings.DEFAULT_FROM_EMAIL = "Image search <noreply@images.example>"
        send_mail("Hello", "Body text", None, ["ann@example.com"])
        [received] = smtp.wait_for(1)
    assert received.recipients == ["ann@example.com"]
    assert received.message["From"] == "Image search <noreply@images.example>"
    assert received.text.strip() == "Body text"
    assert (received.login, received.tls) == ("mailer", bool(tls))


def test_without_email_url_mails_are_files_under_the_data_dir(settings, tmp_path):
    use_mail_url(settings, "")
    settings.EMAIL_FILE_PATH = tmp_path / "mail"
    send_mail("Hello", "Body text", None, ["ann@example.com"])
    [written] = list((tmp_path / "mail").iterdir())
    assert "ann@example.com" in written.read_text()


def test_production_without_email_url_warns_that_mail_reaches_no_one(settings):
    from tenants.checks import mail_settings_check

    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.PRODUCTION = False
    assert mail_settings_check() == []
    settings.PRODUCTION = True
    [warning] = mail_settings_check()
    assert warning.id == "tenants.W001" and "EMAIL_URL" in warning.msg
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert mail_settings_check() == []
