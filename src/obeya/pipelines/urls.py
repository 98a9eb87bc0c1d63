from django.urls import path

from obeya.pipelines import views

urlpatterns = [
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
