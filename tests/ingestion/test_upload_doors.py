"""One way in for an upload: the page, the API and `import_images` validate with the same form and
call the same service, so the same bad input gets the same error, field and words at every door."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from ingestion.models import ImageAsset
from tests.conftest import api, login
from tests.factories import image_bytes

BAD_METADATA = [
    ("tags", ", ".join(f"tag{i}" for i in range(25)), "At most 20 tags per image."),
    ("tags", "x" * 51, "Each tag must have 1 to 50 characters."),
    ("category", "c" * 101, "Ensure this value has at most 100 characters (it has 101)."),
    ("source", "s" * 101, "Ensure this value has at most 100 characters (it has 101)."),
]


def page_errors(client, tenant, field: str, value: str) -> dict[str, list[str]]:
    response = client.post(
        reverse("ingestion:upload", args=[tenant.slug]),
        {"images": SimpleUploadedFile("a.png", image_bytes("PNG")), field: value},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400
    return {name: [e["message"] for e in errors] for name, errors in response.json()["errors"].items()}


def api_errors(client, field: str, value: str) -> dict[str, list[str]]:
    response = client.post(
        "/api/v1/images/", {"file": SimpleUploadedFile("a.png", image_bytes("PNG")), field: value}, format="multipart"
    )
    assert response.status_code == 400
    return response.json()


def command_error(tenant, folder, field: str, value: str) -> str:
    (folder / "a.png").write_bytes(image_bytes("PNG"))
    with pytest.raises(CommandError) as raised:
        call_command("import_images", str(folder), "--tenant", tenant.slug, f"--{field}", value)
    return str(raised.value)


@pytest.mark.parametrize(("field", "value", "words"), BAD_METADATA, ids=lambda v: str(v)[:12])
def test_the_same_bad_metadata_gets_the_same_error_at_every_door(acme, bob, tmp_path, field, value, words):
    assert page_errors(login(bob), acme, field, value) == {field: [words]}
    assert api_errors(api(bob, acme), field, value) == {field: [words]}
    assert command_error(acme, tmp_path, field, value) == f"--{field}: {words}"
    assert ImageAsset.objects.count() == 0


def test_the_same_refused_file_gets_the_same_reason_at_every_door(acme, bob, tmp_path, capsys):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    page = login(bob).post(
        reverse("ingestion:upload", args=[acme.slug]),
        {"images": SimpleUploadedFile("x.png", svg)},
        HTTP_ACCEPT="application/json",
    )
    [page_reason] = [row["error"] for row in page.json()["results"]]
    api_response = api(bob, acme).post(
        "/api/v1/images/", {"file": SimpleUploadedFile("x.png", svg)}, format="multipart"
    )
    (tmp_path / "x.png").write_bytes(svg)
    call_command("import_images", str(tmp_path), "--tenant", acme.slug, verbosity=0)
    assert page_reason.startswith("Unsupported file type")
    assert api_response.json() == {"file": [page_reason]}
    assert f"x.png: {page_reason}" in capsys.readouterr().out
