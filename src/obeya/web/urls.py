from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path

from obeya.web import views

urlpatterns = [
    path("", login_required(views.home), name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("obeya.core.urls")),
    path("", include("obeya.catalog.urls")),
    path("", include("obeya.pipelines.urls")),
    path("", include("obeya.backlog.urls")),
    path("", include("obeya.board.urls")),
]
