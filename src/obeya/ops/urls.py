from django.urls import path

from obeya.ops import continuity_views, incident_views, notify_views, views

OPS = "services/<slug:slug>/operations/"
INCIDENT = OPS + "incidents/<int:number>/"

urlpatterns = [
    path(OPS, views.operations, name="operations"),
    path(OPS + "monitors/new/", views.monitor_new, name="monitor-new"),
    path(OPS + "monitors/<str:name>/", views.monitor_detail, name="monitor-detail"),
    path(OPS + "monitors/<str:name>/delete/", views.monitor_delete, name="monitor-delete"),
    path(OPS + "slos/new/", views.slo_new, name="slo-new"),
    path(OPS + "slos/<str:name>/delete/", views.slo_delete, name="slo-delete"),
    path(OPS + "incidents/new/", views.incident_new, name="incident-new"),
    path(INCIDENT, incident_views.incident_detail, name="incident-detail"),
    path(INCIDENT + "move/", incident_views.incident_move, name="incident-move"),
    path(INCIDENT + "notes/", incident_views.incident_note, name="incident-note"),
    path(INCIDENT + "causes/", incident_views.incident_link, name="incident-link"),
    path(
        INCIDENT + "causes/<int:deployment_id>/delete/",
        incident_views.incident_unlink,
        name="incident-unlink",
    ),
    path(INCIDENT + "postmortem/", incident_views.postmortem, name="postmortem"),
    path(OPS + "problems/new/", views.problem_new, name="problem-new"),
    path(OPS + "problems/<int:number>/", views.problem_detail, name="problem-detail"),
    path(
        OPS + "continuity/backup-jobs/<str:name>/run/",
        continuity_views.backup_now,
        name="continuity-backup",
    ),
    path(OPS + "continuity/drills/", continuity_views.drill_now, name="continuity-drill"),
    path(OPS + "continuity/policy/", continuity_views.policy_set, name="continuity-policy"),
    path(OPS + "channels/new/", notify_views.channel_new, name="channel-new"),
    path(OPS + "channels/<int:channel_id>/", notify_views.channel_detail, name="channel-detail"),
    path(
        OPS + "channels/<int:channel_id>/delete/",
        notify_views.channel_delete,
        name="channel-delete",
    ),
]
