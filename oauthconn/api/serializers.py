"""Serializers. Client secrets and private keys are write-only; token values are never read.

A ``Token`` is shown only as metadata (health, expiry, granted scopes, subject, recent
events): no serializer here has a field for ``access_token``, ``refresh_token`` or
``id_token``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from oauthconn.exceptions import ConfigurationError
from oauthconn.flows.access import identity
from oauthconn.flows.keys import install_key, public_jwk_for, rotate_key

# The configuration rules the admin's forms and the wizard apply too: one source.
from oauthconn.flows.validation import url_problems, validate_configuration, validate_provider
from oauthconn.models import (
    ClientAuthMethod,
    Connection,
    Event,
    Provider,
    Token,
)
from oauthconn.models.connections import validate_refresh_statuses

if TYPE_CHECKING:
    from django.db.models import Model

    from oauthconn.types import RequestUser

RECENT_EVENTS = 5


def nested_data(
    parent: serializers.Serializer, serializer_class: type[serializers.Serializer], item: Model
) -> dict:
    """``serializer_class(item).data`` for a method field, the serializer built once per parent.

    A ModelSerializer builds its fields from the model on every new instance; building one
    per item of a 50-item list was half the list's time. A list serializes all its items
    with one child serializer, so the nested one is kept on that child.
    """
    kept = parent.__dict__.setdefault("_nested_serializers", {})
    if serializer_class not in kept:
        kept[serializer_class] = serializer_class()
    return kept[serializer_class].to_representation(item)


def field_errors(err: ConfigurationError) -> serializers.ValidationError:
    """A problem of :mod:`oauthconn.flows.validation` as DRF's field → messages error."""
    errors = err.details.get("errors") or {err.details.get("field") or "non_field_errors": str(err)}
    return serializers.ValidationError({name: [msg] for name, msg in cast(dict, errors).items()})


class ProviderBySlug(serializers.SlugRelatedField):
    """A provider named by its slug. A value with a NUL is no slug: refused as unknown
    before it reaches the database (PostgreSQL cannot even compare one: a 500 otherwise)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().to_internal_value(data)


def string_list() -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=200), required=False)


def string_dict() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=2000),
        required=False,
    )


class EventSerializer(serializers.ModelSerializer):
    actor: serializers.StringRelatedField[Any] = serializers.StringRelatedField()

    class Meta:
        model = Event
        fields = ["kind", "message", "actor", "created_at"]


class TokenSerializer(serializers.ModelSerializer):
    """The metadata of one grant: never the access, refresh or ID token itself."""

    connected = serializers.BooleanField(source="is_connected")
    granted_scopes = serializers.ListField(child=serializers.CharField())
    recent_events = serializers.SerializerMethodField()

    class Meta:
        model = Token
        fields = [
            "status",
            "connected",
            "token_type",
            "expires_at",
            "refresh_expires_at",
            "granted_scopes",
            "subject",
            "base_values",
            "authorized_at",
            "refreshed_at",
            "last_error",
            "last_error_code",
            "failure_count",
            "next_attempt_at",
            "revocation_pending",
            "recent_events",
        ]
        read_only_fields = fields

    @extend_schema_field(EventSerializer(many=True))
    def get_recent_events(self, token: Token) -> list[dict]:
        events = getattr(token, "recent_events", None)  # prefetched by the list views
        if events is None:
            events = token.events.select_related("actor")[:RECENT_EVENTS]
        return [nested_data(self, EventSerializer, event) for event in events]


class ProviderSerializer(serializers.ModelSerializer):
    scope_separator = serializers.CharField(
        max_length=5, min_length=1, trim_whitespace=False, required=False
    )
    supported_grant_types = string_list()
    code_challenge_methods = string_list()
    token_endpoint_auth_methods = string_list()
    scopes_supported = string_list()
    id_token_signing_algs = string_list()

    class Meta:
        model = Provider
        fields = [
            "id",
            *Provider.SETTINGS_FIELDS,
            "discovered_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["metadata", "discovered_at", "created_at", "updated_at"]

    def validate(self, attrs: dict) -> dict:
        try:
            validate_provider(attrs, instance=self.instance)
        except ConfigurationError as err:
            raise field_errors(err) from err
        return attrs


class ProviderFromIssuerSerializer(serializers.Serializer):
    """Input of ``providers/from-issuer/``: discovery fills in the rest."""

    issuer = serializers.CharField(max_length=2000)
    slug = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=200, required=False)

    def validate_issuer(self, value: str) -> str:
        problem = url_problems({"issuer": value}).get("issuer")
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_slug(self, value: str) -> str:
        if Provider.objects.filter(slug=value).exists():
            raise serializers.ValidationError("A provider with this slug already exists.")
        return value


def write_only_secret(max_length: int, help_text: str) -> serializers.CharField:
    """A secret the API accepts and never returns (nor shows in the browsable API's forms)."""
    return serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=max_length,
        style={"input_type": "password"},
        help_text=help_text,
    )


class ConnectionSerializer(serializers.ModelSerializer):
    """A connection; ``token`` is the caller's view of its grant (shared, or the caller's own)."""

    provider = ProviderBySlug(slug_field="slug", queryset=Provider.objects.all())
    client_secret = write_only_secret(
        2000, "Write-only. Omit (or send empty) to keep the current secret."
    )
    private_key = write_only_secret(
        20000, "Write-only PEM private key for private_key_jwt. Omit to keep the current one."
    )
    has_client_secret = serializers.SerializerMethodField()
    has_private_key = serializers.SerializerMethodField()
    extra_authorize_params = string_dict()
    extra_token_params = string_dict()
    redirect_uri = serializers.CharField(read_only=True)
    pushes_requests = serializers.BooleanField(
        read_only=True,
        help_text="Whether authorization starts with a pushed request (RFC 9126): use_par, "
        "or the provider requires it.",
    )
    token = serializers.SerializerMethodField()
    refresh_on_status = serializers.ListField(
        child=serializers.IntegerField(min_value=400, max_value=599),
        required=False,
        max_length=10,
        validators=[validate_refresh_statuses],
        help_text="Statuses besides 401 that mean an expired token here (e.g. [403]).",
    )

    class Meta:
        model = Connection
        fields = [
            "id",
            "slug",
            "name",
            "provider",
            "grant_type",
            "client_id",
            "client_secret",
            "has_client_secret",
            "client_auth_method",
            "private_key",
            "has_private_key",
            "private_key_id",
            "scopes",
            "optional_scopes",
            "extra_authorize_params",
            "extra_token_params",
            "api_base_url",
            "per_user",
            "per_owner",
            "token_lifetime",
            "use_dpop",
            "test_path",
            "retry_rate_limited",
            "max_attempts",
            "max_retry_wait",
            "refresh_on_status",
            "use_par",
            "pushes_requests",
            "resource",
            "registered_automatically",
            "registration_client_uri",
            "redirect_uri",
            "token",
            "created_at",
            "updated_at",
        ]
        # R57: what a registration issued is the provider's; only deleting the connection
        # ends it. The registration access token is never a field at all.
        read_only_fields = [
            "created_at",
            "updated_at",
            "registered_automatically",
            "registration_client_uri",
        ]

    def get_has_client_secret(self, connection: Connection) -> bool:
        return connection.client_secret is not None

    def get_has_private_key(self, connection: Connection) -> bool:
        return connection.private_key is not None

    @extend_schema_field(TokenSerializer(allow_null=True))
    def get_token(self, connection: Connection) -> dict | None:
        token = visible_token(connection, self.context["request"].user)
        return nested_data(self, TokenSerializer, token) if token is not None else None

    def validate_private_key(self, value: str) -> str:
        if value:
            try:
                public_jwk_for(load_pem_private_key(value.encode(), password=None))
            except (ValueError, TypeError) as err:
                raise serializers.ValidationError(
                    "Enter an unencrypted RSA or EC P-256 private key in PEM format."
                ) from err
        return value

    def validate(self, attrs: dict) -> dict:
        merged = {**self.current_values(), **attrs}
        if merged.get("per_user") and merged.get("per_owner"):
            raise serializers.ValidationError(
                {"per_owner": ["A connection is per-user or per-owner, not both."]}
            )
        stored = self.instance is not None and self.instance.client_secret is not None
        try:
            validate_configuration(
                merged,
                has_secret=bool(attrs.get("client_secret")) or stored,
                provider=merged["provider"],
            )
        except ConfigurationError as err:
            raise field_errors(err) from err
        return attrs

    def current_values(self) -> dict:
        """What ``attrs`` leaves as it is: the instance's values, or a new row's defaults."""
        instance = self.instance
        if instance is None:
            new = Connection()
            return {n: getattr(new, n) for n in ("grant_type", "client_auth_method")}
        return {
            "provider": instance.provider,
            "grant_type": instance.grant_type,
            "client_auth_method": instance.client_auth_method,
            "extra_authorize_params": instance.extra_authorize_params,
            "extra_token_params": instance.extra_token_params,
            "use_par": instance.use_par,
            "resource": instance.resource,
            "per_user": instance.per_user,
            "per_owner": instance.per_owner,
        }

    def create(self, validated_data: dict) -> Connection:
        secrets = pop_secrets(validated_data)
        connection = Connection(**validated_data)
        apply_secrets(connection, secrets)
        connection.save()
        install_signing_key(connection, secrets.get("private_key"))
        return connection

    def update(self, instance: Connection, validated_data: dict) -> Connection:
        secrets = pop_secrets(validated_data)
        apply_secrets(instance, secrets)
        connection = super().update(instance, validated_data)
        install_signing_key(connection, secrets.get("private_key"))
        return connection


def install_signing_key(connection: Connection, pem: str | None) -> None:
    """private_key_jwt: an uploaded key becomes the signing key with its kid and public JWK;
    without one, a connection that has none gets a generated RSA pair (as in the admin)."""
    if pem:
        install_key(connection, pem)
    elif (
        connection.client_auth_method == ClientAuthMethod.PRIVATE_KEY_JWT
        and connection.private_key is None
    ):
        rotate_key(connection)


def pop_secrets(validated_data: dict) -> dict[str, str]:
    return {
        name: validated_data.pop(name)
        for name in ("client_secret", "private_key")
        if validated_data.get(name) is not None
    }


def apply_secrets(connection: Connection, secrets: dict[str, str]) -> None:
    """Set a client secret given (empty keeps the stored one); a public client keeps none.

    The private key goes through :func:`install_signing_key`, which publishes its public key.
    """
    if secrets.get("client_secret"):
        connection.client_secret = secrets["client_secret"]
    if connection.client_auth_method == ClientAuthMethod.NONE:
        connection.client_secret = None


def visible_token(
    connection: Connection, user: RequestUser, team: Model | None = None
) -> Token | None:
    """The grant the caller may see: the shared one, their own for a per-user connection,
    or for a per-owner connection the grant of ``team`` (an owner the resolver gave them)."""
    if connection.per_owner:
        wanted: Any = team
    else:
        wanted = user if connection.per_user else None
    if connection.per_owner and team is None:
        return None  # no owner chosen: no team's grant is shown
    tokens = getattr(connection, "visible_tokens", None)
    if tokens is None:
        tokens = list(Token.objects.filter(connection=connection).for_owner(wanted))
    return next((t for t in tokens if (t.owner_id, t.owner_key) == identity(wanted)), None)
