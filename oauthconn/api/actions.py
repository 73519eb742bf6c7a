"""The REST API's request and result bodies beyond the models: the list filter, the
authorize / disconnect / test actions, and a connection as its end user sees it (with the
owner whose grant it shows). Like :mod:`oauthconn.api.serializers`, no field here carries a
token value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from oauthconn.api.serializers import TokenSerializer, nested_data, visible_token
from oauthconn.exceptions import NotPermitted
from oauthconn.flows.access import authorizing_owner
from oauthconn.models import Connection, TokenStatus

if TYPE_CHECKING:
    from django.db.models import Model

    from oauthconn.types import Owner, RequestUser


def owner_of(connection: Connection, user: RequestUser, requested: str = "") -> Owner:
    """The owner whose grant the caller acts on: nobody (shared), the caller (per-user), or
    for a per-owner connection the owner ``?owner=<pk>`` names, if the resolver lists it for
    the caller (flows.access); NotPermitted otherwise."""
    if connection.per_owner:
        return authorizing_owner(connection, user, requested)
    if not connection.per_user:
        return None
    if not user.is_authenticated:  # the API's permission class admits only signed-in staff
        raise NotPermitted()
    return user


def describe_owner_for_api(owner: Model | None) -> dict | None:
    """A per-owner grant's owner as the API shows it (never another owner's)."""
    if owner is None:
        return None
    return {"model": owner._meta.label, "pk": str(owner.pk), "name": str(owner)}


#: What ``?status=`` accepts: a grant's status, or none at all (also the schema's enum).
STATUS_FILTERS: list[str] = [*TokenStatus.values, "not_connected"]


class ConnectionFilterSerializer(serializers.Serializer):
    """Query parameters of the connection list."""

    provider = serializers.SlugField(required=False)
    status = serializers.ChoiceField(choices=STATUS_FILTERS, required=False)
    per_user = serializers.BooleanField(required=False, allow_null=True, default=None)


class AuthorizeSerializer(serializers.Serializer):
    return_to = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="A path on this site to come back to after the callback.",
    )
    values = serializers.DictField(
        child=serializers.CharField(max_length=300, allow_blank=True),
        required=False,
        help_text="The values of the API base URL's {ask:name} fields, by name "
        '(e.g. {"subdomain": "acme"}); checked before the authorization starts.',
    )
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=50,
        help_text="Scopes to add to the grant (incremental authorization, docs/scopes.md): "
        "each must be among the connection's scopes or optional scopes. The grant keeps "
        "working until the new one is stored.",
    )


class AuthorizeResultSerializer(serializers.Serializer):
    authorization_url = serializers.CharField(
        allow_null=True,
        help_text="Send the user's browser here (with the same session); "
        "null for client credentials, which get a token at once.",
    )
    token = TokenSerializer(allow_null=True)


class DisconnectResultSerializer(serializers.Serializer):
    revoked_at_provider = serializers.BooleanField(
        allow_null=True, help_text="null: the provider has no revocation endpoint."
    )
    message = serializers.CharField()


class ProbeResultSerializer(serializers.Serializer):
    status_code = serializers.IntegerField()
    body_excerpt = serializers.CharField(allow_blank=True)
    url = serializers.CharField()


class OwnerSerializer(serializers.Serializer):
    """The owner (a team: ``OAUTHCONN["OWNER_MODEL"]``) of a per-owner grant."""

    model = serializers.CharField(help_text='The owner model, "app_label.ModelName".')
    pk = serializers.CharField()
    name = serializers.CharField()


class MyConnectionSerializer(serializers.ModelSerializer):
    """A per-user connection as its end user sees it: no client configuration."""

    provider = serializers.CharField(source="provider.name")
    scopes = serializers.ListField(child=serializers.CharField(), source="scope_list")
    owner = serializers.SerializerMethodField()
    token = serializers.SerializerMethodField()

    class Meta:
        model = Connection
        fields = ["slug", "name", "provider", "scopes", "owner", "token"]
        read_only_fields = fields

    @extend_schema_field(OwnerSerializer(allow_null=True))
    def get_owner(self, connection: Connection) -> dict | None:
        """The team (``?owner=``) whose grant ``token`` is; null for a per-user connection."""
        return describe_owner_for_api(self.context.get("owner"))

    @extend_schema_field(TokenSerializer(allow_null=True))
    def get_token(self, connection: Connection) -> dict | None:
        user, team = self.context["request"].user, self.context.get("owner")
        token = visible_token(connection, user, team)
        return nested_data(self, TokenSerializer, token) if token is not None else None
