"""`make run` runs bootstrap_demo every time: the demo login must stay the same across restarts."""

from __future__ import annotations

import io
import re

from django.contrib.auth import get_user_model
from django.core.management import call_command


def demo_login(*args: str) -> str:
    out = io.StringIO()
    call_command("bootstrap_demo", *args, stdout=out)
    return out.getvalue()


def password_in(output: str) -> str:
    return re.search(r"log in as demo / (\S+)", output).group(1)


def test_the_demo_password_survives_a_restart_and_changes_only_when_asked(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    first = password_in(demo_login())
    assert password_in(demo_login()) == first
    user = get_user_model().objects.get(username="demo")
    assert user.check_password(first)
    renewed = password_in(demo_login("--reset-password"))
    assert renewed != first
    assert get_user_model().objects.get(username="demo").check_password(renewed)
    assert oct((tmp_path / "demo-password.txt").stat().st_mode & 0o777) == "0o600"


def test_a_password_the_demo_user_changed_is_kept_and_not_printed(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    demo_login()
    user = get_user_model().objects.get(username="demo")
    user.set_password("mine-now-123")
    user.save()
    output = demo_login()
    assert "with the password you set" in output
    assert get_user_model().objects.get(username="demo").check_password("mine-now-123")
