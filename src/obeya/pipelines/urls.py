from django.urls import path

from obeya.pipelines import secrets_views, views

urlpatterns = [
    path("services/<slug:slug>/secrets/", secrets_views.secret_list, name="secret-list"),
    path("services/<slug:slug>/secrets/delete/", secrets_views.secret_delete, name="secret-delete"),
    path("services/<slug:slug>/secrets/refs/", secrets_views.protected_refs, name="secret-refs"),
    path("services/<slug:slug>/runs/", views.run_list, name="run-list"),
    path("services/<slug:slug>/runs/<int:number>/", views.run_detail, name="run-detail"),
    path("services/<slug:slug>/runs/<int:number>/cancel/", views.run_cancel, name="run-cancel"),
    path("services/<slug:slug>/andon/", views.andon_change, name="andon-change"),
    path("services/<slug:slug>/jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("services/<slug:slug>/jobs/<int:job_id>/retry/", views.job_retry, name="job-retry"),
    path("services/<slug:slug>/jobs/<int:job_id>/play/", views.job_play, name="job-play"),
    path(
        "services/<slug:slug>/jobs/<int:job_id>/log/events",
        views.job_log_events,
        name="job-log-events",
    ),
    path("runners/", views.runner_list, name="runner-list"),
]
