from django.urls import path

from obeya.backlog import views

urlpatterns = [
    path("services/<slug:slug>/backlog/", views.backlog_page, name="backlog"),
    path("services/<slug:slug>/backlog/new/", views.story_new, name="story-new"),
    path("services/<slug:slug>/backlog/reorder/", views.story_reorder, name="story-reorder"),
    path("services/<slug:slug>/backlog/slr/", views.slr_sheet, name="slr-sheet"),
    path("services/<slug:slug>/backlog/<str:key>/", views.story_page, name="story"),
    path("services/<slug:slug>/backlog/<str:key>/edit/", views.story_edit, name="story-edit"),
    path(
        "services/<slug:slug>/backlog/<str:key>/checklist/",
        views.story_checklist,
        name="story-checklist",
    ),
]
