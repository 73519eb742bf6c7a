"""The REST API (Django REST framework): providers, connections and the caller's own tokens.

The only package of oauthconn that imports ``rest_framework``; it needs the ``api`` extra.
Mount it with ``path("api/oauthconn/", include("oauthconn.api.urls"))``.
"""
