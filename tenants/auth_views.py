from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse

from tenants import ratelimit

SCOPE = "login"


class RateLimitedLoginView(auth_views.LoginView):
    """Django's login, refusing a client after AUTH_FAILURE_LIMIT failures in the window."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if ratelimit.is_blocked(SCOPE, request):
            form = self.get_form()
            minutes = max(1, settings.AUTH_FAILURE_WINDOW_SECONDS // 60)
            form.errors.clear()
            form.add_error(None, f"Too many failed attempts. Try again in {minutes} minutes.")
            return self.render_to_response(self.get_context_data(form=form, blocked=True), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        ratelimit.record_failure(SCOPE, self.request)
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        ratelimit.reset(SCOPE, self.request)
        return super().form_valid(form)
