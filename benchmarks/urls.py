"""The demo project's URLs plus the authorization server's request counter and two views for
the token cost benchmark."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from benchmarks import views
from benchmarks.authserver import stats
from project.urls import urlpatterns as project_urls

urlpatterns = [
    path("bench/stats/", csrf_exempt(stats)),
    path("bench/noop/", views.noop),
    path("bench/token/<slug:slug>/", views.use_token),
    *project_urls,
]
