from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
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
from ingestion.uploadhandlers import early_refusals
from search.forms import ImageQueryForm, SearchParamsForm
from search.services import SearchResult, SimilarUnavailable, search_by_image, search_by_text, search_similar
from tenants.api import TenantScopedMixin
from tenants.schema import ERROR

FILTER_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="results wanted; capped at SEARCH_MAX_LIMIT"),
    OpenApiParameter("min_score", OpenApiTypes.FLOAT, description="hide matches scoring below this (-1 to 1)"),
    OpenApiParameter("category", OpenApiTypes.STR),
    OpenApiParameter("source", OpenApiTypes.STR),
    OpenApiParameter("tags", OpenApiTypes.STR, description="comma-separated; every tag must match"),
    OpenApiParameter("uploaded_from", OpenApiTypes.DATE),
    OpenApiParameter("uploaded_to", OpenApiTypes.DATE),
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
        "count": serializers.IntegerField(),
        "limit": serializers.IntegerField(),
    },
)


class Conflict(APIException):
    status_code = 409
    default_code = "not_ready"


def results_response(results: list[SearchResult], limit: int) -> Response:
    rows = [
        {**ImageSerializer(r.asset).data, "score": round(r.score, 6), "distance": round(r.distance, 6)} for r in results
    ]
    return Response({"results": rows, "count": len(rows), "limit": limit})


def parse_params(data: Any, *, require_text: bool = False) -> SearchParamsForm:
    params = SearchParamsForm(data)
    if not params.is_valid():
        raise form_errors(params)
    if require_text and not params.cleaned_data["q"]:
        raise DRFValidationError({"q": ["Give the text to search for, e.g. ?q=a photo of a dog."]})
    return params


class SearchView(TenantScopedMixin, APIView):
    """Search the tenant's ready images, best first."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, required=True, description="what the picture shows"),
            *FILTER_PARAMETERS,
        ],
        responses={200: ResultsSerializer, 503: INDEX_DOWN_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        params = parse_params(request.query_params, require_text=True)
        limit = params.cleaned_data["limit"]
        results = search_by_text(
            tenant=self.tenant, text=params.cleaned_data["q"], limit=limit, filters=params.filters,
            min_score=params.cleaned_data["min_score"],
        )  # fmt: skip
        return results_response(results, limit)

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        request={"multipart/form-data": inline_serializer("ImageQuery", {"image": serializers.FileField()})},
        responses={200: ResultsSerializer, 503: INDEX_DOWN_RESPONSE},
    )
    def post(self, request: Request) -> Response:
        """Query by an image (multipart `image`); the picture is not stored."""
        payload: Mapping[str, Any] = request.data if isinstance(request.data, Mapping) else {}
        refused = early_refusals(request._request)
        if refused:
            raise DRFValidationError({"image": [refused[0].reason]})
        params = parse_params({**request.query_params.dict(), **{k: v for k, v in payload.items() if k != "image"}})
        query = ImageQueryForm(files=request.FILES)
        if not query.is_valid():
            raise form_errors(query)
        image = query.cleaned_data["image"]
        limit = params.cleaned_data["limit"]
        try:
            results = search_by_image(
                tenant=self.tenant, file=image, byte_size=image.size or 0, limit=limit, filters=params.filters,
                min_score=params.cleaned_data["min_score"],
            )  # fmt: skip
        except ValidationError as exc:
            raise DRFValidationError({"image": exc.messages}) from exc
        return results_response(results, limit)


class SimilarView(TenantScopedMixin, APIView):
    """More like this: the image's stored vector, the image itself left out."""

    queryset = ImageAsset.objects.all()  # names the model `pk` belongs to; the lookup is asset_for_tenant

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={
            200: ResultsSerializer,
            409: OpenApiResponse(ERROR, description="The image has no vector yet (still processing, or failed)."),
            503: INDEX_DOWN_RESPONSE,
        },
    )
    def get(self, request: Request, pk: str) -> Response:
        asset = asset_for_tenant(self.tenant, pk)  # Http404 becomes DRF's 404
        params = parse_params(request.query_params)
        limit = params.cleaned_data["limit"]
        try:
            results = search_similar(
                tenant=self.tenant, asset=asset, limit=limit, filters=params.filters,
                min_score=params.cleaned_data["min_score"],
            )  # fmt: skip
        except SimilarUnavailable as exc:
            raise Conflict(str(exc)) from exc
        return results_response(results, limit)
