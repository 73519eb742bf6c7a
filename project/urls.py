from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from project import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("oauthconn/", include("oauthconn.urls")),
    # The REST API and its OpenAPI 3 schema (oauthconn.api, the "api" extra).
    path("api/oauthconn/", include("oauthconn.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # The demo authorization server and a resource it protects (django-oauth-toolkit).
    path("demo-oauth/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("demo-api/me/", views.DemoMe.as_view(), name="demo-api-me"),
    # A site page that calls a connection (the example of docs/testing-your-site.md).
    path("crm-account/", views.crm_account, name="crm-account"),
    # Site code in an async view (docs/async.md).
    path("demo/async/<slug:slug>/", views.demo_async, name="demo-async"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="admin/login.html",
            extra_context={"site_header": "Demo authorization server"},
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
