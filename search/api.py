from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ingestion.api import INDEX_DOWN_RESPONSE, ImageSerializer, form_errors
from ingestion.models import ImageAsset
from ingestion.selectors import asset_for_tenant
from ingestion.services.near_duplicates import near_duplicate_group
from ingestion.uploadhandlers import early_refusals
from search.forms import ImageQueryForm, SearchParamsForm
from search.services import (
    MAX_QUERY_PARTS,
    WINDOW,
    EmptyQuery,
    SearchPage,
    SimilarUnavailable,
    search_by_image,
    search_by_text,
    search_similar,
)
from tenants.api import TenantScopedMixin
from tenants.schema import ERROR

FILTER_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="results per page; capped at SEARCH_MAX_LIMIT"),
    OpenApiParameter(
        "page", OpenApiTypes.INT, description=f"1 by default; pages walk the best {WINDOW} matches, no further"
    ),
    OpenApiParameter(
        "sort",
        OpenApiTypes.STR,
        enum=["score", "-uploaded_at", "uploaded_at"],
        description="order of the matches passing min_score: best first (default), newest or oldest upload first",
    ),
    OpenApiParameter("min_score", OpenApiTypes.FLOAT, description="hide matches scoring below this (-1 to 1)"),
    OpenApiParameter("category", OpenApiTypes.STR),
    OpenApiParameter("source", OpenApiTypes.STR),
    OpenApiParameter("tags", OpenApiTypes.STR, description="comma-separated; every tag must match"),
    OpenApiParameter("tag", OpenApiTypes.STR, description="one more tag that must match"),
    OpenApiParameter("label", OpenApiTypes.STR, description="auto-tags, comma-separated; every one must match"),
    OpenApiParameter("uploaded_from", OpenApiTypes.DATE),
    OpenApiParameter("uploaded_to", OpenApiTypes.DATE),
]
NOT_PARAMETERS = [
    OpenApiParameter(
        "not",
        OpenApiTypes.STR,
        many=True,
        description=f"what the picture must not show; may repeat (at most {MAX_QUERY_PARTS}); "
        "the query vector becomes normalise(... − not_weight·mean(not))",
    ),
    OpenApiParameter("not_weight", OpenApiTypes.FLOAT, description="λ, 0 to 1, 0.5 by default"),
]
WORDS_WITH_PICTURE = [
    OpenApiParameter(
        "q",
        OpenApiTypes.STR,
        many=True,
        description=f"words to search with the picture; may repeat (at most {MAX_QUERY_PARTS})",
    ),
    OpenApiParameter(
        "image_weight",
        OpenApiTypes.FLOAT,
        description="w, 0 to 1, 0.5 by default: normalise(w·picture + (1−w)·mean(q) − λ·mean(not))",
    ),
    *NOT_PARAMETERS,
]


class SearchHitSerializer(ImageSerializer):
    """One result: the image, with its cosine similarity to the query (`score`, 1 for the same
    direction) and `distance` (1 - score)."""

    score = serializers.FloatField()
    distance = serializers.FloatField()

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "score", "distance"]
        read_only_fields = fields


ResultsSerializer = inline_serializer(
    "SearchResults",
    {
        "results": SearchHitSerializer(many=True),
        "count": serializers.IntegerField(help_text="matches passing min_score among the best ranked, all pages"),
        "limit": serializers.IntegerField(),
        "page": serializers.IntegerField(),
        "sort": serializers.CharField(),
        "next": serializers.URLField(
            allow_null=True, help_text="the next page (for a picture, POST the same picture to it); null on the last"
        ),
    },
)


class Conflict(APIException):
    status_code = 409
    default_code = "not_ready"


def results_response(request: Request, found: SearchPage, params: QueryDict) -> Response:
    rows = [
        {**ImageSerializer(r.asset).data, "score": round(r.score, 6), "distance": round(r.distance, 6)} for r in found
    ]
    next_url = None
    if found.has_next:
        following = params.copy()
        following["page"] = str(found.page + 1)
        next_url = request.build_absolute_uri(f"{request.path}?{urlencode(sorted(following.lists()), doseq=True)}")
    body = {"results": rows, "count": found.count, "limit": found.limit, "page": found.page, "sort": found.sort}
    return Response({**body, "next": next_url})


def merged_params(request: Request) -> QueryDict:
    """The query string's parameters and, for a form post, the body's (every value of a repeated
    one), the picture itself left out."""
    merged = request.query_params.copy()
    payload = request.data if isinstance(request.data, QueryDict) else None
    if payload is not None:
        for key in payload:
            if key not in {"image", "csrfmiddlewaretoken"}:
                merged.setlist(key, payload.getlist(key))
    return merged


def parse_params(data: Any, *, require_text: bool = False) -> SearchParamsForm:
    params = SearchParamsForm(data)
    if not params.is_valid():
        raise form_errors(params)
    if require_text and not params.texts:
        raise DRFValidationError({"q": ["Give the text to search for, e.g. ?q=a photo of a dog."]})
    return params


def empty_query(exc: EmptyQuery) -> DRFValidationError:
    return DRFValidationError({"not": [str(exc)]})


class SearchView(TenantScopedMixin, APIView):
    """Search the tenant's ready images, best first (or by upload date), a page at a time."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                OpenApiTypes.STR,
                required=True,
                many=True,
                description=f"what the picture shows; may repeat (at most {MAX_QUERY_PARTS}), the query is their mean",
            ),
            *NOT_PARAMETERS,
            *FILTER_PARAMETERS,
        ],
        responses={200: ResultsSerializer, 503: INDEX_DOWN_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        params = parse_params(request.query_params, require_text=True)
        try:
            found = search_by_text(tenant=self.tenant, text=params.texts, negatives=params.negatives, **params.options)
        except EmptyQuery as exc:
            raise empty_query(exc) from exc
        return results_response(request, found, request.query_params)

    @extend_schema(
        parameters=[*WORDS_WITH_PICTURE, *FILTER_PARAMETERS],
        request={"multipart/form-data": inline_serializer("ImageQuery", {"image": serializers.FileField()})},
        responses={200: ResultsSerializer, 503: INDEX_DOWN_RESPONSE},
    )
    def post(self, request: Request) -> Response:
        """Query by an image (multipart `image`), with words (`q`, `not`) if given; the picture is not
        stored. Parameters may come in the query string or as form fields beside the picture."""
        refused = early_refusals(request._request)
        if refused:
            raise DRFValidationError({"image": [refused[0].reason]})
        merged = merged_params(request)
        params = parse_params(merged)
        query = ImageQueryForm(files=request.FILES)
        if not query.is_valid():
            raise form_errors(query)
        image = query.cleaned_data["image"]
        try:
            found = search_by_image(
                tenant=self.tenant, file=image, byte_size=image.size or 0, texts=params.texts,
                negatives=params.negatives, image_weight=params.cleaned_data["image_weight"], **params.options,
            )  # fmt: skip
        except ValidationError as exc:
            raise DRFValidationError({"image": exc.messages}) from exc
        except EmptyQuery as exc:
            raise empty_query(exc) from exc
        return results_response(request, found, merged)


class SimilarView(TenantScopedMixin, APIView):
    """More like this: the image's stored vector (with words, if given), the image itself left out."""

    queryset = ImageAsset.objects.all()  # names the model `pk` belongs to; the lookup is asset_for_tenant

    @extend_schema(
        parameters=[*WORDS_WITH_PICTURE, *FILTER_PARAMETERS],
        responses={
            200: ResultsSerializer,
            409: OpenApiResponse(ERROR, description="The image has no vector yet (still processing, or failed)."),
            503: INDEX_DOWN_RESPONSE,
        },
    )
    def get(self, request: Request, pk: str) -> Response:
        asset = asset_for_tenant(self.tenant, pk)  # Http404 becomes DRF's 404
        params = parse_params(request.query_params)
        try:
            found = search_similar(
                tenant=self.tenant, asset=asset, texts=params.texts, negatives=params.negatives,
                image_weight=params.cleaned_data["image_weight"], **params.options,
            )  # fmt: skip
        except SimilarUnavailable as exc:
            raise Conflict(str(exc)) from exc
        except EmptyQuery as exc:
            raise empty_query(exc) from exc
        return results_response(request, found, request.query_params)


DuplicatesSerializer = inline_serializer(
    "NearDuplicateGroup",
    {"results": ImageSerializer(many=True), "count": serializers.IntegerField()},
)


class DuplicatesView(TenantScopedMixin, APIView):
    """The image's group of near-duplicates (itself included, oldest upload first): images within
    NEAR_DUPLICATE_DISTANCE of it, or of another member; just the image when it has none."""

    queryset = ImageAsset.objects.all()  # names the model `pk` belongs to; the lookup is asset_for_tenant

    @extend_schema(responses={200: DuplicatesSerializer})
    def get(self, request: Request, pk: str) -> Response:
        asset = asset_for_tenant(self.tenant, pk)
        group = near_duplicate_group(self.tenant, asset)
        return Response({"results": ImageSerializer(group, many=True).data, "count": len(group)})
