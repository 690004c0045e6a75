"""Token pages of a cluster. Thin: permissions via core.permissions, validation in forms,
work in tokens.services / tokens.sync / tokens.certkeys.

Pages that show a secret (a new or rotated token, a reveal, a join command, a certificate key)
are answered with ``Cache-Control: no-store`` (their routes are listed in core.no_store) and
never put the secret in a message or a URL. A create or rotate redirects to the page that shows
the new token (Post/Redirect/Get: a reload repeats nothing); the token waits for that one read
in the session, encrypted like every stored secret, and is removed from it as it is shown.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

import kube
from audit.models import AuditEvent
from audit.services import refusals
from clusters import preconditions
from clusters.models import Cluster
from clusters.pages import cluster_for
from core import encryption
from core.permissions import ADMIN, OPERATE, VIEW, can
from operations.services import OperationStateError
from tokens import certkeys, services
from tokens.forms import JoinCommandForm, TokenForm, TokenPolicyForm
from tokens.models import BootstrapToken, CertificateKey
from tokens.panels import token_context
from tokens.policies import TokenError, policy_for
from tokens.sync import SKIPPED, sync_now

ACTIVITY_LIMIT = 25
# A person's create, rotate or delete that the cluster did not carry out is audited as failed.
API_ERRORS = (kube.KubeAPIError,)
# The session key under which a new token waits, encrypted, for the one page that shows it.
SHOWN_ONCE = "tokens.shown_once"


def _token(cluster: Cluster, token_id: str) -> BootstrapToken:
    return get_object_or_404(
        BootstrapToken.objects.select_related("cluster", "node", "created_by", "successor"),
        cluster=cluster,
        token_id=token_id,
    )


def _refuse_unless_ready(cluster: Cluster, action: str) -> None:
    """Refuse an action the cluster cannot carry out now (never initialized, no credentials)
    before any connection, in the words the page shows beside the disabled button. Raised inside
    the action's ``refusals``, it is audited as the API server's own refusal would be (failed)."""
    ready = preconditions.check(cluster, action)
    if not ready:
        raise kube.ClusterNotConnectable(ready.reason, hint=ready.hint)


@login_required
def token_list(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    context = token_context(cluster, request.user)
    context["form"] = TokenForm(cluster=cluster, policy=context["policy"])
    ready = preconditions.for_cluster(cluster)
    # Each action the page offers, or its reason when it cannot work now (shown disabled).
    for action in ("create_token", "sync_tokens", "rotate_token", "revoke_token"):
        context[action] = ready[action]
    context["activity"] = AuditEvent.objects.filter(cluster=cluster, action__regex=r"^(token|certificate_key)")[
        :ACTIVITY_LIMIT
    ]
    return render(request, "tokens/token_list.html", context)


def hold_for_one_read(session, token: BootstrapToken, full: str, *, title: str) -> None:
    """Keep a new token (encrypted) in the session until the page that shows it reads it once."""
    session[SHOWN_ONCE] = {"token": token.pk, "secret": encryption.encrypt(full), "title": title}


def _redirect_to_new_token(request: HttpRequest, token: BootstrapToken, full: str, *, title: str) -> HttpResponse:
    hold_for_one_read(request.session, token, full, title=title)
    return redirect("tokens:created", name=token.cluster.name, token_id=token.token_id)


@login_required
@require_GET
def token_created(request: HttpRequest, name: str, token_id: str) -> HttpResponse:
    """The one time a new token is shown: the token, and the join commands made from it.
    A reload finds it gone from the session and says where it can still be revealed."""
    cluster = cluster_for(request, name, OPERATE)
    token = _token(cluster, token_id)
    held = request.session.get(SHOWN_ONCE)
    is_admin = can(request.user, ADMIN, cluster)
    context = {"cluster": cluster, "token": token, "title": f"Token {token.token_id}", "can_admin": is_admin}
    if not held or held.get("token") != token.pk:
        return render(request, "tokens/token_created.html", context)
    del request.session[SHOWN_ONCE]
    full = encryption.decrypt(held["secret"])
    key = certkeys.current_key(cluster)
    context |= {
        "full_token": full,
        "title": held["title"],
        "worker_command": services.join_command_for(cluster, full) if token.can_join and cluster.ca_pin_hash else "",
        "control_plane_command": (
            services.join_command_for(cluster, full, control_plane=True, certificate_key=key.plain_key())
            if key is not None and token.can_join and cluster.ca_pin_hash and is_admin
            else ""
        ),
    }
    return render(request, "tokens/token_created.html", context)


@login_required
def token_create(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    policy = policy_for(cluster)
    form = TokenForm(request.POST or None, cluster=cluster, policy=policy)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with refusals("token.created", TokenError, failed=API_ERRORS, actor=request.user, obj=cluster):
                _refuse_unless_ready(cluster, "create_token")
                token, full = services.create_token(
                    cluster,
                    user=request.user,
                    token=data["token"] or None,
                    ttl=data["ttl"],
                    expires_at=data["expires_at"],
                    description=data["description"],
                    usages=data["usages"],
                    groups=data["groups"],
                    auto_rotate=data["auto_rotate"],
                )
        except TokenError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        except kube.KubeAPIError as exc:
            form.add_error(None, f"Nothing was created: {exc}")
        else:
            return _redirect_to_new_token(request, token, full, title="Token created")
    return render(
        request,
        "tokens/token_form.html",
        {"cluster": cluster, "form": form, "policy": policy},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def token_rotate(request: HttpRequest, name: str, token_id: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    token = _token(cluster, token_id)
    try:
        with refusals("token.rotated", TokenError, failed=API_ERRORS, actor=request.user, obj=token):
            _refuse_unless_ready(cluster, "rotate_token")
            successor, full = services.rotate_token(token, user=request.user, reason="requested in the UI")
    except (TokenError, kube.KubeAPIError) as exc:
        messages.error(request, f"Token {token.token_id} was not rotated: {exc}")
        return redirect("tokens:list", name=cluster.name)
    return _redirect_to_new_token(request, successor, full, title=f"Token {token.token_id} rotated: its successor")


@login_required
@require_POST
def token_delete(request: HttpRequest, name: str, token_id: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    token = _token(cluster, token_id)
    # Revoke (the button's word and the audit action): the Secret is deleted from the cluster.
    reason = (request.POST.get("reason") or "").strip() or "revoked in the UI"
    try:
        with refusals("token.revoked", TokenError, failed=API_ERRORS, actor=request.user, obj=token):
            _refuse_unless_ready(cluster, "revoke_token")
            services.delete_token(token, user=request.user, reason=reason[:200])
    except (TokenError, kube.KubeAPIError) as exc:
        messages.error(request, f"Token {token.token_id} was not revoked: {exc}")
    else:
        messages.success(request, f"Token {token.token_id} revoked: its Secret was deleted from the cluster.")
    return redirect("tokens:list", name=cluster.name)


@login_required
@require_POST
def token_reveal(request: HttpRequest, name: str, token_id: str) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    token = _token(cluster, token_id)
    try:
        secret = services.reveal_token(token, user=request.user)
    except TokenError as exc:
        return render(request, "tokens/_revealed.html", {"error": str(exc)}, status=409)
    return render(request, "tokens/_revealed.html", {"token": token, "revealed": secret})


@login_required
@require_POST
def token_join_command(request: HttpRequest, name: str, token_id: str) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    token = _token(cluster, token_id)
    form = JoinCommandForm(request.POST)
    if not form.is_valid():
        return render(
            request, "tokens/_revealed.html", {"error": "choose a worker or a control-plane join command"}, status=400
        )
    control_plane = form.cleaned_data["role"] == "control-plane"
    key = certkeys.current_key(cluster) if control_plane else None
    try:
        command = services.reveal_join_command(
            token, user=request.user, control_plane=control_plane, certificate_key=key.plain_key() if key else ""
        )
    except TokenError as exc:
        return render(request, "tokens/_revealed.html", {"error": str(exc)}, status=409)
    note = ""
    if control_plane and key is None:
        note = (
            "No valid certificate key: this command expects the shared certificates on the node already; "
            "request a new certificate key to get one with --certificate-key."
        )
    return render(request, "tokens/_revealed.html", {"token": token, "command": command, "note": note})


@login_required
@require_POST
def token_sync(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    report = sync_now(cluster, user=request.user)
    if report.ok:
        summary = "; ".join(report.drift) or "no drift"
        messages.success(request, f"Synced with the cluster: {summary}.")
    elif report.result == SKIPPED:  # the words the disabled button shows (clusters.preconditions)
        messages.error(request, f"Nothing was synced: {report.message}")
    else:
        messages.error(request, f"Sync did not complete ({report.result}): {report.message}")
    return redirect("tokens:list", name=cluster.name)


@login_required
def policy_edit(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    policy = policy_for(cluster)
    form = TokenPolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        changed = services.update_policy(form.save(commit=False), user=request.user)
        # The labels a person saw on the form, never the field names.
        labels = [str(form.fields[name].label or name) for name in changed]
        labels = [label[:1].lower() + label[1:] for label in labels]
        messages.success(request, f"Token policy saved ({', '.join(labels) or 'no changes'}).")
        return redirect("tokens:list", name=cluster.name)
    return render(
        request, "tokens/policy_form.html", {"cluster": cluster, "form": form}, status=400 if form.errors else 200
    )


@login_required
@require_POST
def certificate_key_create(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    try:
        operation = certkeys.request_certificate_key(cluster, user=request.user)
    except certkeys.CertificateKeyRefused as exc:
        messages.error(request, str(exc))
        return redirect("tokens:list", name=cluster.name)
    except OperationStateError as exc:
        messages.error(request, f"No new certificate key: {exc}")
        return redirect("tokens:list", name=cluster.name)
    return redirect(operation)


@login_required
@require_POST
def certificate_key_reveal(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    key = get_object_or_404(CertificateKey, cluster=cluster, pk=pk)
    try:
        value = certkeys.reveal_certificate_key(key, user=request.user)
    except TokenError as exc:
        return render(request, "tokens/_revealed.html", {"error": str(exc)}, status=409)
    return render(request, "tokens/_revealed.html", {"revealed": value, "certificate_key": key})
