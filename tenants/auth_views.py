from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from tenants import ratelimit
from tenants.forms import InvitedSignupForm
from tenants.invitations import (
    Accepted,
    InvitationUnusable,
    invitation_accept,
    invitation_for_user,
    invitation_signup,
    mail_written_to,
    signup_invitation,
)
from tenants.models import Membership
from tenants.selectors import memberships_for_user

SCOPE = "login"
RESET_SCOPE = "password-reset"


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


class RateLimitedPasswordResetView(auth_views.PasswordResetView):
    """Django's password reset by e-mail; each request counts against the client's address, so the
    form cannot be used to flood someone's mailbox."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if ratelimit.is_blocked(RESET_SCOPE, request):
            form = self.get_form()
            form.errors.clear()
            minutes = max(1, settings.AUTH_FAILURE_WINDOW_SECONDS // 60)
            form.add_error(None, f"Too many reset requests from your address. Try again in {minutes} minutes.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        ratelimit.record_failure(RESET_SCOPE, request)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "mail_dir": mail_written_to()}


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """Who you are and the tenants you belong to, with your role and since when."""
    memberships = memberships_for_user(request.user).order_by("tenant__name")
    return render(request, "tenants/account.html", {"memberships": memberships})


@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, invitation_token: str) -> HttpResponse:
    """Where an invitation's link leads. Signed in with the invited e-mail: a button joins the tenant.
    Signed in otherwise: why the link does not work for this account (404, the same answer as for an
    unknown link). Not signed in: a new person chooses a username and password (or logs in first);
    that page is the same for every link, valid or not, and the tenant is named only once the link
    has been used."""
    if request.user.is_authenticated:
        return _accept_signed_in(request, invitation_token, request.user)  # type: ignore[arg-type]
    form, refusal = InvitedSignupForm(None), ""
    if request.method == "POST":
        try:
            invitation = signup_invitation(invitation_token)
        except InvitationUnusable as why:
            refusal = str(why)
        else:
            form = InvitedSignupForm(request.POST, email=invitation.email)
            if form.is_valid():
                accepted = invitation_signup(
                    token=invitation_token,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                    address=ratelimit.client_address(request),
                )
                login(request, accepted.membership.user, backend="django.contrib.auth.backends.ModelBackend")
                return _joined(request, accepted)
        status = 400
    else:
        status = 200
    context = {"form": form, "token": invitation_token, "refusal": refusal}
    return render(request, "tenants/invitation_signup.html", context, status=status)


def _accept_signed_in(request: HttpRequest, token: str, user: User) -> HttpResponse:
    try:
        invitation = invitation_for_user(token, user)
        if request.method == "POST":
            return _joined(
                request, invitation_accept(token=token, user=user, address=ratelimit.client_address(request))
            )
    except InvitationUnusable as why:
        return render(request, "tenants/invitation_unusable.html", {"reason": str(why)}, status=404)
    already = Membership.objects.filter(tenant=invitation.tenant, user=user).first()
    return render(request, "tenants/invitation_accept.html", {"invitation": invitation, "already": already})


def _joined(request: HttpRequest, accepted: Accepted) -> HttpResponse:
    membership = accepted.membership
    if accepted.already_member:
        messages.info(request, f"You were already a member of {membership.tenant.name} ({membership.role}).")
    else:
        messages.success(request, f"Welcome to {membership.tenant.name}: you joined as {membership.role}.")
    return redirect("ingestion:dashboard", membership.tenant.slug)
