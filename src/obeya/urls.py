"""URL wiring: the API under /api/ and the web UI."""

from django.urls import include, path

from obeya.api import build_api

api = build_api()

urlpatterns = [
    path("api/", api.urls),
    path("", include("obeya.web.urls")),
    path("", include("obeya.deploy.urls")),
    path("", include("obeya.ops.urls")),
    path("", include("obeya.metrics.urls")),
]
