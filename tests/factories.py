from __future__ import annotations

import io

import factory
from django.contrib.auth import get_user_model
from PIL import Image

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def image_bytes(
    fmt: str = "PNG",
    size: tuple[int, int] = (64, 48),
    color: tuple[int, ...] | int = (200, 30, 30),
    mode: str = "RGB",
    **save: object,
) -> bytes:
    """A small real image; vary `color` to get distinct bytes."""
    image = Image.new(mode, size, color)
    # a little structure, so thumbnails and embeddings differ from a flat fill
    for x in range(0, size[0], 8):
        image.putpixel((x, x % size[1]), 0 if mode in {"L", "P", "1"} else (0,) * len(image.getbands()))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()
