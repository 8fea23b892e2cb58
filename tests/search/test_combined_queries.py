"""Several descriptions, things the picture must not show, and a picture with words: the query
vector is `normalise(w*image + (1-w)*mean(q) - lam*mean(not))`, checked against the model's own
embeddings combined here by hand, through the API and the pages."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from search.services import EmptyQuery, combine_query
from tests.conftest import api, login
from tests.search.conftest import SAMPLE_NAMES
from tests.testenv import SAMPLES
from vectors import index
from vectors.embedding import get_embedder

pytestmark = pytest.mark.django_db(transaction=True)


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def texts(*words: str) -> np.ndarray:
    return np.asarray(get_embedder("text").embed_texts(list(words)), dtype=np.float64)


def picture(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(get_embedder("image").embed_images([Image.open(SAMPLES / name).convert("RGB")])[0])


def expected_scores(acme, indexed, query: np.ndarray) -> dict[str, float]:
    stored = index.fetch_vectors(tenant=acme, ids=[str(indexed[name].id) for name in SAMPLE_NAMES])
    return {key: float(np.dot(unit(query), unit(vector))) for key, vector in stored.items()}


def ranked(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda key: -scores[key])


def answer_scores(response) -> dict[str, float]:
    assert response.status_code == 200, response.content
    return {row["id"]: row["score"] for row in response.json()["results"]}


def test_the_formula_is_each_part_normalised_then_weighed():
    rng = np.random.default_rng(7)
    image, q1, q2, n1 = (rng.normal(size=8) for _ in range(4))
    got = combine_query(image=image * 3, texts=[q1, q2 * 5], negatives=[n1 * 2], image_weight=0.3, not_weight=0.8)
    expected = unit(0.3 * unit(image) + 0.7 * (unit(q1) + unit(q2)) / 2 - 0.8 * unit(n1))
    assert got == pytest.approx(expected, abs=1e-6)
    assert combine_query(image=image, negatives=[n1]) == pytest.approx(unit(unit(image) - 0.5 * unit(n1)), abs=1e-6)
    assert combine_query(texts=[q1], negatives=[n1]) == pytest.approx(unit(unit(q1) - 0.5 * unit(n1)), abs=1e-6)
    both = combine_query(image=image, texts=[q1])
    assert both == pytest.approx(unit(0.5 * unit(image) + 0.5 * unit(q1)), abs=1e-6)
    with pytest.raises(EmptyQuery):
        combine_query(texts=[q1], negatives=[q1 * 2], not_weight=1)


def test_text_search_with_several_descriptions_and_nots_scores_as_computed_by_hand(indexed, acme, bob):
    q = texts("a photo of a dog", "an animal outdoors")
    nots = texts("grass", "a person")
    query = (unit(q[0]) + unit(q[1])) / 2 - 0.3 * (unit(nots[0]) + unit(nots[1])) / 2
    params = [("q", "a photo of a dog"), ("q", "an animal outdoors"), ("not", "grass"), ("not", "a person")]
    response = api(bob, acme).get("/api/v1/search/", [*params, ("not_weight", "0.3")])
    got = answer_scores(response)
    want = expected_scores(acme, indexed, query)
    assert list(got) == ranked(want)
    assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.slow  # one of the slowest: 1.5 to 2 s of CPU
def test_a_picture_with_words_scores_as_computed_by_hand(indexed, acme, bob):
    query = 0.7 * unit(picture("dog.jpg")) + 0.3 * unit(texts("at the beach")[0]) - 0.5 * unit(texts("a cat")[0])
    with (SAMPLES / "dog.jpg").open("rb") as handle:
        response = api(bob, acme).post(
            "/api/v1/search/?image_weight=0.7",
            {"image": handle, "q": "at the beach", "not": "a cat"},
            format="multipart",
        )
    got = answer_scores(response)
    want = expected_scores(acme, indexed, query)
    assert list(got) == ranked(want)
    assert got == pytest.approx(want, abs=1e-3)


def test_more_like_this_with_words_uses_the_stored_vector(indexed, acme, bob):
    dog = indexed["dog.jpg"]
    [stored] = index.fetch_vectors(tenant=acme, ids=[str(dog.id)]).values()
    query = 0.5 * unit(stored) + 0.5 * unit(texts("a person")[0]) - 0.5 * unit(texts("a cat")[0])
    response = api(bob, acme).get(f"/api/v1/images/{dog.id}/similar/", {"q": "a person", "not": "a cat"})
    got = answer_scores(response)
    want = {key: score for key, score in expected_scores(acme, indexed, query).items() if key != str(dog.id)}
    assert list(got) == ranked(want)
    assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.slow  # one of the slowest: 1.5 to 2 s of CPU
def test_a_not_pushes_the_image_it_describes_down(indexed, acme, bob):
    """The test model's weights are random, so which words 'describe' a picture is found here from
    its own vectors: the candidate whose vector leans most towards the best match of `q`."""
    scores = expected_scores(acme, indexed, texts("a photo")[0])
    top = ranked(scores)[0]
    candidates = ["a photo of a dog", "a cat", "a person", "grass", "a red square", "the sky", "a screenshot"]
    stored = index.fetch_vectors(tenant=acme, ids=list(scores))
    lean = {
        word: float(
            np.dot(unit(vector), unit(stored[top]))
            - max(np.dot(unit(vector), unit(stored[k])) for k in scores if k != top)
        )
        for word, vector in zip(candidates, texts(*candidates), strict=True)
    }
    word = max(lean, key=lean.__getitem__)
    client = api(bob, acme)
    before = list(answer_scores(client.get("/api/v1/search/", {"q": "a photo"})))
    after = list(answer_scores(client.get("/api/v1/search/", {"q": "a photo", "not": word, "not_weight": 1})))
    assert before[0] == top
    assert after.index(top) > 0, f"not={word!r} should push {top} down"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=dog&not_weight=1.5", "not_weight"),
        ("q=dog&image_weight=-0.1", "image_weight"),
        ("q=dog&not=" + "x" * 1001, "not"),
        ("&".join(["q=dog"] * 9), "q"),
        ("q=dog&sort=name", "sort"),
        ("q=dog&page=0", "page"),
        ("q=dog&limit=100&page=4", "page"),
        ("not=grass", "q"),
        ("q=a%20dog&not=a%20dog&not_weight=1", "not"),
    ],
)
def test_bad_combined_parameters_are_a_400_that_names_them(indexed, acme, bob, query, field):
    response = api(bob, acme).get(f"/api/v1/search/?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_the_schema_describes_every_search_parameter(db):
    schema = APIClient().get("/api/schema/?format=json").json()

    def names(path: str, method: str) -> set[str]:
        return {p["name"] for p in schema["paths"][path][method].get("parameters", []) if p["in"] == "query"}

    common = {"limit", "page", "sort", "min_score", "not", "not_weight", "category", "source", "tags"}
    assert common | {"q"} <= names("/api/v1/search/", "get")
    assert common | {"q", "image_weight"} <= names("/api/v1/search/", "post")
    assert common | {"q", "image_weight"} <= names("/api/v1/images/{id}/similar/", "get")
    [q] = [p for p in schema["paths"]["/api/v1/search/"]["get"]["parameters"] if p["name"] == "q"]
    assert q["schema"]["type"] == "array"


@pytest.mark.slow  # one of the slowest: 1.5 to 2 s of CPU
def test_the_page_searches_with_a_not_and_with_words_beside_a_picture(indexed, acme, bob):
    client = login(bob)
    url = reverse("search:search", args=[acme.slug])
    page = client.get(url, {"q": "a photo", "not": "grass"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="not"' in html and 'value="grass"' in html
    want = expected_scores(acme, indexed, unit(texts("a photo")[0]) - 0.5 * unit(texts("grass")[0]))
    assert [str(r.asset.id) for r in page.context["results"]] == ranked(want)
    with (SAMPLES / "dog.jpg").open("rb") as handle:
        posted = client.post(url, {"image": handle, "q": "at the beach", "not": "a cat"})
    assert posted.status_code == 200
    want = expected_scores(
        acme,
        indexed,
        0.5 * unit(picture("dog.jpg")) + 0.5 * unit(texts("at the beach")[0]) - 0.5 * unit(texts("a cat")[0]),
    )
    assert [str(r.asset.id) for r in posted.context["results"]] == ranked(want)
    assert client.get(url, {"not": "grass"}).status_code == 400
