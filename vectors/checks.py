from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from vectors.embedding import ModelSpec


@register()
def embedding_settings_check(**_: Any) -> list[CheckMessage]:
    spec = ModelSpec.from_settings()
    messages: list[CheckMessage] = []
    path = spec.checkpoint_path
    if path is not None and not path.is_file():
        messages.append(
            Error(
                f"CLIP_PRETRAINED={spec.pretrained!r} looks like a checkpoint path, but there is no file there.",
                hint="Point CLIP_PRETRAINED at an OpenCLIP checkpoint file, or use a pretrained tag "
                "such as laion2b_s34b_b79k.",
                id="vectors.E001",
            )
        )
    if spec.uses_random_weights:
        messages.append(
            Warning(
                "CLIP_PRETRAINED=random: the model has untrained weights and search results mean nothing.",
                hint="Use it for tests and demos only.",
                id="vectors.W001",
            )
        )
    return messages
