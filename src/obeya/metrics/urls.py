from django.urls import path, re_path

from obeya.metrics import download_views, room_views, views

METRICS = "services/<slug:slug>/metrics/"

urlpatterns = [
    path("room/", room_views.room, name="room"),
    path("room/events", room_views.room_events, name="room-events"),
    path(METRICS, views.dashboard, name="metrics"),
    re_path(
        r"^services/(?P<slug>[-a-zA-Z0-9_]+)/metrics/"
        r"(?P<name>weeks|dora|checks|value-stream|maturity)\.(?P<fmt>csv|json)$",
        download_views.download,
        name="metrics-download",
    ),
]
