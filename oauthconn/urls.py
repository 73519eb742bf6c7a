"""Include with ``path("oauthconn/", include("oauthconn.urls"))``."""

from django.urls import path

from oauthconn import scope_views, views

app_name = "oauthconn"

urlpatterns = [
    path("", views.my_connections, name="my_connections"),
    path("connect/<slug:slug>/", views.start, name="start"),
    path("callback/<slug:slug>/", views.callback, name="callback"),
    path("result/<str:key>/", views.callback_result, name="callback_result"),
    path("switch/<str:key>/", views.switch_account, name="switch"),
    path("disconnect/<slug:slug>/", views.disconnect, name="disconnect"),
    path("scopes/<slug:slug>/", scope_views.request_scopes, name="request_scopes"),
    path("jwks/<slug:slug>/", views.jwks, name="jwks"),
]
