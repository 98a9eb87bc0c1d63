"""Pages every capability shares: sign in and out, and the home page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    redirect_authenticated_user = True


def home(request: HttpRequest) -> HttpResponse:
    return redirect("/services/")
