from __future__ import annotations

import io

import numpy as np
import pytest
from chromadb.utils.data_loaders import ImageLoader
from chromadb.utils.embedding_functions import OpenCLIPEmbeddingFunction
from PIL import Image

from ingestion.imaging import load_rgb
from tests.testenv import CHECKPOINT, SAMPLES, TEST_MODEL
from vectors.embedding import ClipEmbedder, EmbeddingModelUnavailable, ModelSpec, get_embedder, model_key

TEXTS = ["a photo of a dog", "a photo of a cat"]


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def chroma_function() -> OpenCLIPEmbeddingFunction:
    return OpenCLIPEmbeddingFunction(model_name=TEST_MODEL, checkpoint=str(CHECKPOINT))


@pytest.mark.slow  # Chroma's own OpenCLIP function: a second model
@pytest.mark.parametrize("name", ["dog.jpg", "dog-with-person.jpg"])
def test_image_embedding_equals_chromas_openclip_function(chroma_function, name):
    rgb = np.array(Image.open(SAMPLES / name).convert("RGB"))
    [theirs] = chroma_function([rgb])
    [ours] = get_embedder().embed_images([load_rgb(str(SAMPLES / name))])
    assert cosine(ours, theirs) >= 0.9999


@pytest.mark.slow  # Chroma's own OpenCLIP function: a second model
def test_text_embeddings_equal_chromas_openclip_function(chroma_function):
    theirs = chroma_function(TEXTS)
    ours = get_embedder().embed_texts(TEXTS)
    for mine, reference in zip(ours, theirs, strict=True):
        assert cosine(mine, reference) >= 0.9999


def test_vectors_are_unit_length_and_distinct():
    vectors = get_embedder().embed_images([load_rgb(str(SAMPLES / n)) for n in ("dog.jpg", "cat.png")])
    assert [round(float(np.linalg.norm(v)), 5) for v in vectors] == [1.0, 1.0]
    assert cosine(*vectors) < 0.9999


@pytest.mark.slow  # every image embedded twice
def test_a_batch_gives_the_same_vectors_as_one_at_a_time():
    images = [load_rgb(str(SAMPLES / n)) for n in ("dog.jpg", "dog-with-person.jpg", "cat.png")]
    embedder = get_embedder()
    batched = embedder.embed_images(images)
    single = [embedder.embed_images([image])[0] for image in images]
    for a, b in zip(batched, single, strict=True):
        assert cosine(a, b) >= 0.9999  # bf16 kernels round differently per batch size; fp32 agree to 1e-6


def test_palette_png_keeps_its_colours_where_chromas_loader_loses_them():
    path = SAMPLES / "cat.png"
    assert Image.open(path).mode == "P"
    [chroma_array] = ImageLoader()([str(path)])
    assert chroma_array.ndim == 2  # the palette indices: the colours are gone
    ours = load_rgb(str(path))
    assert ours.mode == "RGB"
    assert np.array_equal(np.array(ours), np.array(Image.open(path).convert("RGB")))


def test_exif_orientation_is_applied_before_embedding():
    upright = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to view
    buffer = io.BytesIO()
    upright.save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    assert load_rgb(buffer).size == (20, 40)


@pytest.mark.slow  # a model of its own, packed for the CPU
def test_auto_precision_is_bf16_exactly_where_the_cpu_multiplies_bf16_natively():
    import torch

    from vectors.embedding import cpu_has_native_bf16

    auto = ClipEmbedder(ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT), device="cpu"))
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert auto.dtype == expected
    assert {p.dtype for p in auto._model.parameters()} == {expected}


@pytest.mark.slow  # Chroma's own OpenCLIP function: a second model
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_every_precision_gives_the_fp32_vectors_within_rounding(chroma_function, precision):
    """Against Chroma's function: plain OpenCLIP in fp32, neither batched nor rearranged."""
    images = [load_rgb(str(SAMPLES / n)) for n in ("dog.jpg", "cat.png")]
    other = ClipEmbedder(ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT), device="cpu", precision=precision))
    reference = chroma_function([np.array(image) for image in images])
    for mine, theirs in zip(other.embed_images(images), reference, strict=True):
        assert cosine(mine, theirs) >= 0.999
    for mine, theirs in zip(other.embed_texts(TEXTS), chroma_function(TEXTS), strict=True):
        assert cosine(mine, theirs) >= 0.999


@pytest.mark.slow  # two models built and compared layer by layer: 11 s on 2 cores
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_cpu_tower_is_rearranged_and_gives_the_plain_models_numbers(precision):
    import open_clip
    import torch

    from vectors.embedding import cpu_has_native_bf16
    from vectors.embedding.cpu_tower import PackedLinear, PackedSelfAttention, PatchEmbeddingMatmul

    embedder = ClipEmbedder(ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT), device="cpu", precision=precision))
    plain, _, _ = open_clip.create_model_and_transforms(TEST_MODEL, pretrained=str(CHECKPOINT))
    plain = plain.eval().to(embedder.dtype)
    visual = embedder._model.visual
    assert isinstance(visual.conv1, PatchEmbeddingMatmul)
    blocks = visual.transformer.resblocks
    packed = precision == "bf16" and cpu_has_native_bf16()  # where oneDNN multiplies bf16 in hardware
    assert all(isinstance(block.attn, PackedSelfAttention) == packed for block in blocks)
    assert all(isinstance(block.mlp.c_fc, PackedLinear) == packed for block in blocks)
    tolerance = 1e-4 if precision == "fp32" else 0.05
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for size in (embedder.image_size, embedder.image_size + 7):  # a partial last patch is dropped alike
            pixels = torch.randn(3, 3, size, size + 3, generator=generator).to(embedder.dtype)
            assert torch.allclose(visual.conv1(pixels), plain.visual.conv1(pixels), atol=tolerance)
        for batch in (1, 5, embedder.batch_size):  # weights are packed for full batches; others work alike
            pixels = torch.randn(batch, 3, embedder.image_size, embedder.image_size, generator=generator)
            ours = embedder._model.encode_image(pixels.to(embedder.dtype)).float()
            theirs = plain.encode_image(pixels.to(embedder.dtype)).float()
            assert torch.nn.functional.cosine_similarity(ours, theirs).min() >= (
                0.99999 if precision == "fp32" else 0.999
            )


@pytest.mark.slow  # two models of its own, one packed for the CPU
@pytest.mark.parametrize("fault", ["raises", "disagrees"])
def test_packed_blocks_that_fail_their_probe_are_left_plain(monkeypatch, fault):
    """A oneDNN that cannot run the private packed ops (another torch, another CPU) or runs them
    differently cannot exist on this machine: the packed product is made to fail here."""
    import torch

    from vectors.embedding.cpu_tower import PackedLinear

    def broken(self, x):
        if fault == "raises":
            raise RuntimeError("could not create a primitive descriptor")
        return torch.zeros(*x.shape[:-1], self.bias.shape[0], dtype=x.dtype)

    monkeypatch.setattr(PackedLinear, "forward", broken)
    embedder = ClipEmbedder(ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT), device="cpu", precision="bf16"))
    for block in embedder._model.visual.transformer.resblocks:
        assert isinstance(block.attn, torch.nn.MultiheadAttention)
        assert isinstance(block.mlp.c_fc, torch.nn.Linear) and isinstance(block.mlp.c_proj, torch.nn.Linear)
    reference = ClipEmbedder(ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT), device="cpu", precision="fp32"))
    image = load_rgb(str(SAMPLES / "dog.jpg"))
    assert cosine(embedder.embed_images([image])[0], reference.embed_images([image])[0]) >= 0.999


def test_layers_of_another_shape_are_not_rearranged():
    import torch

    from vectors.embedding.cpu_tower import PackedSelfAttention, PatchEmbeddingMatmul

    assert PatchEmbeddingMatmul.fits(torch.nn.Conv2d(3, 8, kernel_size=16, stride=16, bias=False))
    assert not PatchEmbeddingMatmul.fits(torch.nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1))  # ResNet stems
    assert not PatchEmbeddingMatmul.fits(torch.nn.Conv2d(3, 8, kernel_size=16, stride=8))  # overlapping patches
    assert PackedSelfAttention.fits(torch.nn.MultiheadAttention(64, 4, batch_first=True))
    assert not PackedSelfAttention.fits(torch.nn.MultiheadAttention(64, 4))  # sequence first
    assert not PackedSelfAttention.fits(torch.nn.MultiheadAttention(64, 4, batch_first=True, add_bias_kv=True))


def test_an_unknown_precision_says_what_to_set():
    with pytest.raises(EmbeddingModelUnavailable, match="CLIP_PRECISION='fp8'; use auto, fp32, fp16 or bf16"):
        ClipEmbedder(ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT), device="cpu", precision="fp8"))


def test_a_missing_checkpoint_file_says_what_to_set():
    spec = ModelSpec(name=TEST_MODEL, pretrained="/nonexistent/weights.pt", device="cpu")
    with pytest.raises(EmbeddingModelUnavailable, match="CLIP_PRETRAINED"):
        ClipEmbedder(spec)


def test_unknown_weights_say_what_to_set():
    spec = ModelSpec(name=TEST_MODEL, pretrained="no-such-tag", device="cpu")
    with pytest.raises(EmbeddingModelUnavailable, match="CLIP_PRETRAINED to the path of a local checkpoint"):
        ClipEmbedder(spec)


def test_unknown_model_name_is_refused():
    with pytest.raises(EmbeddingModelUnavailable, match="CLIP_MODEL"):
        ClipEmbedder(ModelSpec(name="ViT-Nope", pretrained="random", device="cpu"))


@pytest.mark.slow  # two models of its own
def test_random_weights_only_when_asked_and_reproducible_across_processes():
    spec = ModelSpec(name=TEST_MODEL, pretrained="random", device="cpu", seed=7)
    assert spec.uses_random_weights
    assert not ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT)).uses_random_weights
    first = ClipEmbedder(spec).embed_texts(["a dog"])[0]
    second = ClipEmbedder(spec).embed_texts(["a dog"])[0]
    assert cosine(first, second) >= 0.99999


def test_each_model_and_weights_get_their_own_vector_space():
    keys = {
        model_key(ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT))),
        model_key(ModelSpec(name=TEST_MODEL, pretrained="random", seed=0)),
        model_key(ModelSpec(name=TEST_MODEL, pretrained="random", seed=1)),
        model_key(ModelSpec(name="ViT-B-32", pretrained="laion2b_s34b_b79k")),
    }
    assert len(keys) == 4


@pytest.mark.slow  # models of its own
def test_a_text_only_model_holds_no_image_tower_and_embeds_texts_the_same():
    spec = ModelSpec(name=TEST_MODEL, pretrained=str(CHECKPOINT), device="cpu")
    text_only = ClipEmbedder(spec, towers=("text",))

    def weights(embedder):
        return sum(t.numel() for t in [*embedder._model.parameters(), *embedder._model.buffers()])

    assert weights(text_only) < 0.7 * weights(get_embedder())
    for mine, full in zip(text_only.embed_texts(TEXTS), get_embedder().embed_texts(TEXTS), strict=True):
        assert cosine(mine, full) >= 0.99999
    with pytest.raises(RuntimeError, match="texts only"):
        text_only.embed_images([load_rgb(str(SAMPLES / "dog.jpg"))])


@pytest.mark.slow  # models of its own
def test_a_process_that_only_searches_text_loads_only_the_text_tower(monkeypatch):
    from vectors import embedding

    monkeypatch.setattr(embedding, "_loaded", {})
    assert get_embedder("text").towers == ("text",)
    assert set(get_embedder("image").towers) == {"image", "text"}
    assert set(get_embedder("text").towers) == {"image", "text"}  # the whole model serves texts too


def test_large_jpegs_are_decoded_at_reduced_scale_without_changing_the_embedding(tmp_path):
    photo = Image.open(SAMPLES / "dog.jpg").resize((3200, 1800), Image.Resampling.BICUBIC)
    path = tmp_path / "big.jpg"
    photo.save(path, quality=92)
    full = load_rgb(str(path))
    reduced = load_rgb(str(path), min_side=448)
    assert full.size == (3200, 1800)
    assert 448 <= min(reduced.size) < 900
    embedder = get_embedder()
    [a, b] = embedder.embed_images([full, reduced])
    assert cosine(a, b) >= 0.999
