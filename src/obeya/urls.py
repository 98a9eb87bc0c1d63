"""URL wiring: the API under /api/, the admin, and the web UI."""

from django.contrib import admin
from django.urls import include, path

from obeya.api import build_api

api = build_api()

urlpatterns = [
    path("api/", api.urls),
    path("django-admin/", admin.site.urls),
    path("", include("obeya.web.urls")),
]
