"""Include with ``path("api/oauthconn/", include("oauthconn.api.urls"))``."""

from rest_framework.routers import SimpleRouter

from oauthconn.api import views

app_name = "oauthconn-api"

router = SimpleRouter()
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("connections", views.ConnectionViewSet, basename="connection")
router.register("me/connections", views.MyConnectionViewSet, basename="my-connection")

urlpatterns = router.urls
