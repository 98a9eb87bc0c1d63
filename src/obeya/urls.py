"""URL wiring: the API under /api/, the Prometheus scrape target at /metrics, and the web UI."""

from django.urls import include, path

from obeya.api import build_api
from obeya.metrics import prometheus

api = build_api()

urlpatterns = [
    path("api/", api.urls),
    path("metrics", prometheus.scrape, name="prometheus"),
    path("", include("obeya.web.urls")),
    path("", include("obeya.deploy.urls")),
    path("", include("obeya.ops.urls")),
    path("", include("obeya.metrics.urls")),
]
