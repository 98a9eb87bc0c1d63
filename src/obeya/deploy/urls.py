from django.urls import path

from obeya.deploy import views

ENVIRONMENT = "services/<slug:slug>/environments/<str:name>/"
DEPLOYMENT = "services/<slug:slug>/deployments/<int:deployment_id>/"

urlpatterns = [
    path("services/<slug:slug>/environments/", views.environments, name="environments"),
    path(ENVIRONMENT, views.environment_detail, name="environment-detail"),
    path(ENVIRONMENT + "edit/", views.environment_edit, name="environment-edit"),
    path(ENVIRONMENT + "protection/", views.environment_protection, name="environment-protection"),
    path(ENVIRONMENT + "deploy/", views.deploy, name="environment-deploy"),
    path(ENVIRONMENT + "rollback/", views.rollback, name="environment-rollback"),
    path(DEPLOYMENT, views.deployment_detail, name="deployment-detail"),
    path(DEPLOYMENT + "live/", views.deployment_live, name="deployment-live"),
    path(DEPLOYMENT + "decide/", views.deployment_decide, name="deployment-decide"),
    path(DEPLOYMENT + "cancel/", views.deployment_cancel, name="deployment-cancel"),
]
