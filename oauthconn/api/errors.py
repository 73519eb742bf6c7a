"""JSON error bodies with a stable machine-readable ``code``: never a stack trace or a secret.

Every error answer of the API looks like ``{"code": "...", "detail": "..."}``; validation
errors add ``fields`` (``{"field name": ["message", ...]}``) and transient provider errors add
``retry_after`` (seconds, also sent as ``Retry-After``). The ``code`` of an oauthconn error is
the exception's ``code`` attribute (``needs_reauthorization``, ``not_connected``,
``provider_unavailable``, ``busy``, ``invalid_configuration``, ...; the table is in
docs/lifecycle.md).
"""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from oauthconn import exceptions as oc

logger = logging.getLogger("oauthconn")

#: HTTP status per exception class; the most specific class in the MRO wins.
STATUS_FOR_ERROR: dict[type[oc.OAuthConnError], int] = {
    oc.OAuthConnError: status.HTTP_400_BAD_REQUEST,
    oc.ConfigurationError: status.HTTP_400_BAD_REQUEST,
    oc.DecryptionFailed: status.HTTP_409_CONFLICT,
    oc.ConnectionNotFound: status.HTTP_404_NOT_FOUND,
    oc.NotConnected: status.HTTP_409_CONFLICT,
    oc.ReauthorizationRequired: status.HTTP_409_CONFLICT,
    oc.TemporarilyUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    oc.DisallowedResourceURL: status.HTTP_400_BAD_REQUEST,
    oc.TransportError: status.HTTP_502_BAD_GATEWAY,
    oc.ProviderTimeout: status.HTTP_504_GATEWAY_TIMEOUT,
    # The guard refused a configured destination: the configuration must change.
    oc.BlockedDestination: status.HTTP_400_BAD_REQUEST,
    oc.AuthorizationFailed: status.HTTP_400_BAD_REQUEST,
    # Not one of the caller's grants (another team's, a shared one without the permission).
    oc.NotPermitted: status.HTTP_403_FORBIDDEN,
    oc.ProviderError: status.HTTP_502_BAD_GATEWAY,
    oc.ProviderUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer (for the schema)."""

    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    detail = serializers.CharField(help_text="A sentence for people; never holds a secret.")
    # The body's key is "fields"; the serializer metaclass moves declared fields off the class,
    # so this does not shadow Serializer.fields at run time, which the stubs cannot know.
    fields = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Validation errors by field name (input errors only)."
    )
    retry_after = serializers.IntegerField(
        required=False, help_text="Seconds to wait before retrying (transient errors)."
    )


def status_for(error: oc.OAuthConnError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_FOR_ERROR:
            return STATUS_FOR_ERROR[cls]
    return status.HTTP_400_BAD_REQUEST


def oauthconn_error_response(error: oc.OAuthConnError) -> Response:
    """The answer for an oauthconn error: its code and its safe ``str()``."""
    body: dict[str, object] = {"code": error.code, "detail": str(error)}
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        body["retry_after"] = math.ceil(retry_after)
        headers["Retry-After"] = str(body["retry_after"])
    logger.info("oauthconn api error: code=%s status=%s", error.code, status_for(error))
    return Response(body, status=status_for(error), headers=headers)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: oauthconn errors and DRF's own in the one body shape.

    The API views use it whatever ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` says; a site may set
    it there too. Anything else is left to Django (a 500 without details when DEBUG is off).
    """
    if isinstance(exc, oc.OAuthConnError):
        return oauthconn_error_response(exc)
    if isinstance(exc, ProtectedError):
        return Response(
            {"code": "in_use", "detail": "It is still used by connections; delete them first."},
            status=status.HTTP_409_CONFLICT,
        )
    # Converted here rather than by DRF's handler, so the body below gets the same shape.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        names = ", ".join(str(name) for name in fields)
        response.data = {
            "code": "invalid",
            "detail": f"Invalid input: {names}." if names else "Invalid input.",
            "fields": fields,
        }
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "code": codes if isinstance(codes, str) else exc.default_code,
            "detail": str(exc.detail),
        }
    return response
