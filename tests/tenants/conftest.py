from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from config.env import email_from_url
from tests.support.smtp import SmtpServer

LINK = re.compile(r"https?://\S+/accounts/invitations/[\w-]+/")


@pytest.fixture
def mail_server(settings, tmp_path) -> Iterator[SmtpServer]:
    """A real SMTP server on loopback, and the settings pointed at it through EMAIL_URL's parser."""
    with SmtpServer(tmp_path) as smtp:
        for key, value in email_from_url(smtp.url(), default_file_path=tmp_path / "mail").items():
            setattr(settings, key, value)
        settings.DEFAULT_FROM_EMAIL = "Image search <noreply@images.example>"
        yield smtp


def invitation_link(text: str) -> str:
    found = LINK.search(text)
    assert found, f"no invitation link in:\n{text}"
    return found.group(0)


def link_path(link: str) -> str:
    return "/" + link.split("/", 3)[3]
