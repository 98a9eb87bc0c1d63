from django.urls import path

from obeya.catalog import views

urlpatterns = [
    path("services/", views.service_list, name="service-list"),
    path("services/new/", views.service_new, name="service-new"),
    path("services/<slug:slug>/", views.service_detail, name="service-detail"),
    path("services/<slug:slug>/edit/", views.service_edit, name="service-edit"),
    path("services/<slug:slug>/stage/", views.service_stage, name="service-stage"),
    path("services/<slug:slug>/members/", views.member_add, name="member-add"),
    path("services/<slug:slug>/members/remove/", views.member_remove, name="member-remove"),
]
