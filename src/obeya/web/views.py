"""Pages every capability shares: sign in and out, and the home page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from obeya.web.sign_in import ThrottledAuthenticationForm


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    redirect_authenticated_user = True
    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        refusal = getattr(form, "refusal", None)
        if refusal is not None:  # throttled: too many failures, say when to come back
            response.status_code = 429
            response["Retry-After"] = str(refusal.retry_after)
        return response


def home(request: HttpRequest) -> HttpResponse:
    return redirect("/services/")
