"""Viewsets: thin edges that parse input, call a flow and serialize the result.

Staff manage providers and connections (``OAUTHCONN["API_PERMISSION_CLASSES"]``); every
signed-in user manages their own per-user grants under ``me/``
(``OAUTHCONN["API_USER_PERMISSION_CLASSES"]``). On a per-user connection, every action acts
on the caller's own grant: nobody reaches another user's token, by id or by filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.schemas.inspectors import ViewInspector
from rest_framework.serializers import BaseSerializer

from oauthconn import flows
from oauthconn.api import actions
from oauthconn.api import serializers as s
from oauthconn.api.errors import ErrorSerializer, exception_handler
from oauthconn.api.permissions import resolve_permission_classes
from oauthconn.api.queries import filter_connections, with_visible_tokens
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import DiscoveryFailed, NotPermitted
from oauthconn.flows.access import owners_of
from oauthconn.flows.configuration import (
    SECURITY_RELEVANT_PROVIDER_FIELDS,
    has_stored_grant,
    invalidate_grants,
    issuer_conflict,
    secret_holders,
    security_relevant,
)
from oauthconn.flows.discovery import discover_provider
from oauthconn.flows.probe import probe_connection
from oauthconn.flows.providers import find_or_create_provider
from oauthconn.models import Connection, Provider, Token
from oauthconn.paging import BoundedCountPaginator
from oauthconn.views import private, safe_return_to

if TYPE_CHECKING:
    from django.db.models import Model

    from oauthconn.types import Owner

#: Error statuses any operation may answer with, each with an ``ErrorSerializer`` body.
ERROR_STATUSES = ("400", "401", "403", "404", "409", "502", "503", "504")


class OAuthConnSchema(AutoSchema):
    """Documents the error bodies (``ErrorSerializer``) next to each operation's success."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in ERROR_STATUSES:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
        return responses


class Pagination(PageNumberPagination):
    """Page numbers; ``count`` is exact up to 10,000 matches and PostgreSQL's estimate past
    that (``oauthconn.paging``), while ``next`` is always exact."""

    django_paginator_class = BoundedCountPaginator
    page_size_query_param = "page_size"
    max_page_size = 500

    # DRF declares page_size a plain attribute; it only ever reads it, and a property lets the
    # setting be read at call time, like every oauthconn setting.
    @property
    def page_size(self) -> int:  # type: ignore[override]
        return oauthconn_settings.API_PAGE_SIZE


class APIMixin:
    """Permission classes from settings (per request), our error bodies, our schema."""

    permission_setting = "API_PERMISSION_CLASSES"
    pagination_class: type[BasePagination] | None = Pagination
    schema: ViewInspector | None = OAuthConnSchema()
    # Any segment reaches the view, so a malformed id is a JSON 404 rather than the site's page.
    lookup_value_regex = "[^/]+"

    def get_permissions(self):
        return [cls() for cls in resolve_permission_classes(self.permission_setting)]

    def get_exception_handler(self):
        return exception_handler


@extend_schema_view(
    from_issuer=extend_schema(
        request=s.ProviderFromIssuerSerializer,
        responses={201: s.ProviderSerializer, 200: s.ProviderSerializer},
    ),
    refresh_discovery=extend_schema(request=None, responses=s.ProviderSerializer),
)
class ProviderViewSet(APIMixin, viewsets.ModelViewSet):
    """Authorization servers. ``from-issuer`` and ``refresh-discovery`` run discovery."""

    queryset = Provider.objects.all()
    serializer_class = s.ProviderSerializer
    action_permissions = {
        "from_issuer": ["oauthconn.add_provider"],
        "refresh_discovery": ["oauthconn.change_provider"],
    }

    def perform_update(self, serializer: BaseSerializer[Provider]) -> None:
        provider = cast(Provider, serializer.instance)  # an update always has its instance
        changed = [n for n, v in serializer.validated_data.items() if getattr(provider, n) != v]
        refuse_if_authorized(provider, changed)
        serializer.save()

    @action(detail=False, methods=["post"], url_path="from-issuer")
    def from_issuer(self, request: Request) -> Response:
        data = self.validated(s.ProviderFromIssuerSerializer, request.data)
        fields = discover_provider(data["issuer"])
        conflict = issuer_conflict(fields)
        if conflict:
            raise s.serializers.ValidationError({"issuer": [conflict]})
        # The same server already set up (as the wizard finds it): that row, not a twin.
        provider, created = find_or_create_provider(
            fields, slug=data["slug"], name=data.get("name") or fields["issuer"]
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(provider).data, status=code)

    @action(detail=True, methods=["post"], url_path="refresh-discovery")
    def refresh_discovery(self, request: Request, pk: str | None = None) -> Response:
        provider = self.get_object()
        if not provider.issuer:
            raise DiscoveryFailed(f"{provider.name} has no issuer to discover from.")
        fields = discover_provider(provider.issuer)
        refuse_if_authorized(provider, [n for n, v in fields.items() if getattr(provider, n) != v])
        with transaction.atomic():
            provider = Provider.objects.select_for_update().get(pk=provider.pk)
            for name, value in fields.items():
                setattr(provider, name, value)
            provider.save()
        return Response(self.get_serializer(provider).data)

    def validated(self, serializer_class: type[BaseSerializer], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def refuse_if_authorized(provider: Provider, changed: list[str]) -> None:
    """R5 for providers: endpoints must not move under connections holding secrets or grants.

    Their client secrets and tokens would then go to the new host. As in the admin, such
    connections must move to a new provider one by one, re-entering their secrets.
    """
    fields = [
        name for name in security_relevant(changed) if name in SECURITY_RELEVANT_PROVIDER_FIELDS
    ]
    if not fields:
        return
    holders = [c.slug for c in secret_holders(provider)]
    if holders:
        detail = (
            f"These connections hold a secret or tokens for this provider: {', '.join(holders)}. "
            "Create a new provider and move each connection to it (re-entering its secret)."
        )
        raise s.serializers.ValidationError({name: [detail] for name in fields})


LIST_PARAMETERS = [
    OpenApiParameter("provider", str, description="Provider slug."),
    OpenApiParameter(
        "status",
        str,
        enum=actions.STATUS_FILTERS,
        description="Status of the caller's grant (shared, or their own for per-user).",
    ),
    OpenApiParameter("per_user", bool, description="Per-user (true) or shared (false)."),
]

#: ``?owner=`` of the actions on a per-owner connection and of the "me" endpoints
OWNER_PARAMETER = OpenApiParameter(
    "owner",
    str,
    description="Per-owner connections: the primary key of the owner (a team) whose grant "
    "to act on; it must be one OAUTHCONN['OWNER_RESOLVER'] gives the caller.",
)


@extend_schema_view(
    list=extend_schema(parameters=LIST_PARAMETERS),
    authorize=extend_schema(
        request=actions.AuthorizeSerializer,
        responses=actions.AuthorizeResultSerializer,
        parameters=[OWNER_PARAMETER],
    ),
    refresh=extend_schema(request=None, responses=s.TokenSerializer, parameters=[OWNER_PARAMETER]),
    test=extend_schema(
        request=None, responses=actions.ProbeResultSerializer, parameters=[OWNER_PARAMETER]
    ),
    disconnect=extend_schema(
        request=None, responses=actions.DisconnectResultSerializer, parameters=[OWNER_PARAMETER]
    ),
)
class ConnectionViewSet(APIMixin, viewsets.ModelViewSet):
    """Connections. Actions act on the shared grant, or on the caller's own (per-user)."""

    serializer_class = s.ConnectionSerializer
    queryset = Connection.objects.all()
    action_permissions = {
        "authorize": ["oauthconn.view_connection", "oauthconn.authorize_connection"],
        "refresh": ["oauthconn.view_connection", "oauthconn.refresh_connection"],
        "test": ["oauthconn.view_connection", "oauthconn.refresh_connection"],
        "disconnect": ["oauthconn.view_connection", "oauthconn.disconnect_connection"],
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return self.queryset
        return with_visible_tokens(self.queryset, self.request.user)

    def filter_queryset(self, queryset):
        # Here rather than in get_queryset, which the permission classes call as well: the
        # "not connected" filter reads its matches first to choose how to ask (api.queries).
        return filter_connections(super().filter_queryset(queryset), self)

    def perform_create(self, serializer: BaseSerializer[Connection]) -> None:
        serializer.save(created_by=self.request.user)

    def perform_update(self, serializer: BaseSerializer[Connection]) -> None:
        connection = cast(Connection, serializer.instance)  # an update always has its instance
        changed = [n for n, v in serializer.validated_data.items() if getattr(connection, n) != v]
        fields = security_relevant(changed)
        if fields and has_stored_grant(connection):
            require_secret_again(connection, serializer.validated_data, fields)
        with transaction.atomic():
            connection = serializer.save()
            if fields:
                invalidate_grants(connection, fields, self.request.user)
        if flows.KIND_FIELDS & set(changed):
            flows.end_stranded_grants(connection, actor=self.request.user)
        connection.__dict__.pop("visible_tokens", None)  # the answer shows the grant as it is now

    def perform_destroy(self, connection: Connection) -> None:
        """Revoke every grant at the provider first (RFC 7009), then delete."""
        flows.delete_connection(connection, actor=self.request.user)

    @action(detail=True, methods=["post"])
    def authorize(self, request: Request, pk: str | None = None) -> Response:
        return start(request, self.get_object(), self.get_serializer_context())

    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        connection = self.get_object()
        token = renewed(connection, actions.owner_of(connection, request.user, requested(request)))
        return Response(s.TokenSerializer(token).data)

    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        connection = self.get_object()
        owner = actions.owner_of(connection, request.user, requested(request))
        result = probe_connection(connection, owner=owner)
        return Response(actions.ProbeResultSerializer(result).data)

    @action(detail=True, methods=["post"])
    def disconnect(self, request: Request, pk: str | None = None) -> Response:
        return disconnect(request, self.get_object())


def renewed(connection: Connection, owner: Owner) -> Token:
    """The renewed token, or a 503 that says nothing was renewed and why (the flow served
    the still-valid old token: backing off, or another worker's refresh)."""
    return renewed_token(flows.renew_now(connection, owner))


def renewed_token(renewal: flows.Renewal) -> Token:
    """``renewal``'s new token, or TemporarilyUnavailable (503) saying why there is none."""
    if not renewal.renewed:
        raise renewal.unavailable()  # Busy when another worker's renewal is in progress
    return renewal.token


def require_secret_again(
    connection: Connection, data: Mapping[str, Any], fields: list[str]
) -> None:
    """R5: moving an authorized connection needs its secret (or private key) typed again."""
    method = data.get("client_auth_method", connection.client_auth_method)
    name = {"private_key_jwt": "private_key"}.get(method, "client_secret")
    if method == "none" or data.get(name):
        return
    raise s.serializers.ValidationError(
        {
            name: [
                f"Changing {', '.join(fields)} of an authorized connection drops its tokens: "
                f"enter the {name.replace('_', ' ')} again to confirm."
            ]
        }
    )


def requested(request: Request) -> str:
    """The owner (a team's primary key) a per-owner connection's grant is asked for."""
    return str(request.query_params.get("owner", ""))


def start(request: Request, connection: Connection, context: Mapping[str, Any]) -> Response:
    """Start authorization bound to the caller's session, or fetch a client credentials token."""
    params = actions.AuthorizeSerializer(data=request.data, context=context)
    params.is_valid(raise_exception=True)
    return_to = params.validated_data.get("return_to", "")
    if return_to and not safe_return_to(request, return_to):
        raise s.serializers.ValidationError({"return_to": ["Enter a path on this site."]})
    owner = actions.owner_of(connection, request.user, requested(request))
    outcome = flows.connect(
        connection,
        owner,
        user=request.user,
        session=request.session,
        return_to=return_to,
        asked=params.validated_data.get("values", {}),
        extra_scopes=params.validated_data.get("scopes", []),
    )
    if isinstance(outcome, flows.Connected):
        token = renewed_token(outcome.renewal)
        return Response({"authorization_url": None, "token": s.TokenSerializer(token).data})
    # The URL holds a fresh state (R19): not cached, not leaked in a Referer.
    return private(Response({"authorization_url": outcome.url, "token": None}))


def disconnect(request: Request, connection: Connection) -> Response:
    owner = actions.owner_of(connection, request.user, requested(request))
    result = flows.disconnect_owner(connection, owner, actor=request.user)
    return Response(actions.DisconnectResultSerializer(result).data)


@extend_schema_view(
    list=extend_schema(parameters=[OWNER_PARAMETER]),
    retrieve=extend_schema(parameters=[OWNER_PARAMETER]),
    connect=extend_schema(
        request=actions.AuthorizeSerializer,
        responses=actions.AuthorizeResultSerializer,
        parameters=[OWNER_PARAMETER],
    ),
    disconnect=extend_schema(
        request=None, responses=actions.DisconnectResultSerializer, parameters=[OWNER_PARAMETER]
    ),
)
class MyConnectionViewSet(
    APIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The per-user connections the caller may connect, with their own grant only; with
    ``?owner=<pk>``, the per-owner connections with the grant of that owner (a team), if
    ``OAUTHCONN["OWNER_RESOLVER"]`` lists it for the caller (else 403)."""

    permission_setting = "API_USER_PERMISSION_CLASSES"
    serializer_class = actions.MyConnectionSerializer
    lookup_field = "slug"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Connection.objects.filter(per_user=True)
        team = self.team()
        if team is None:
            return with_visible_tokens(Connection.objects.filter(per_user=True), self.request.user)
        queryset = Connection.objects.filter(per_owner=True)
        return with_visible_tokens(queryset, self.request.user, team)

    def team(self) -> Model | None:
        """The owner ``?owner=`` names, among those the resolver gives the caller."""
        wanted = requested(self.request)
        if not wanted:
            return None
        found = [o for o in owners_of(self.request.user) if str(o.pk) == wanted]
        if not found:
            raise NotPermitted("You may not act for this owner.")
        return found[0]

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False) and "request" in context:
            context["owner"] = self.team()
        return context

    @action(detail=True, methods=["post"])
    def connect(self, request: Request, slug: str | None = None) -> Response:
        return start(request, self.get_object(), self.get_serializer_context())

    @action(detail=True, methods=["post"])
    def disconnect(self, request: Request, slug: str | None = None) -> Response:
        return disconnect(request, self.get_object())
