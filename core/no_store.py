"""The one list of responses that carry a secret or a backup: they are never stored by a browser or a proxy.

A page that shows a token, a join command or a certificate key, a download of an admin kubeconfig
or an etcd snapshot, and a form re-rendered after a secret was posted (the secret itself is not
sent back, see core.secret_forms, but the page answers a request that carried one) are all sent
with ``Cache-Control: no-store``, whatever their status. A new view of that kind is added here,
and to the list tests/unit/test_no_store.py checks.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

NO_STORE_ROUTES = frozenset(
    {
        # downloads of a credential or a backup
        "clusters:admin-kubeconfig",
        "daytwo:snapshot-download",
        # pages that show a token, a join command or a certificate key
        "tokens:create",
        "tokens:created",
        "tokens:rotate",
        "tokens:reveal",
        "tokens:join_command",
        "tokens:certificate_key_reveal",
        # a new user account's one-time password
        "teams:user_create",
        # forms that take a secret (private key, password, kubeconfig, token, a kubeadm file with tokens)
        "nodes:add",
        "nodes:edit",
        "adopt-cluster",
        "import-cluster",
        "login",
        "password-change",
    }
)


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every response of a route in ``NO_STORE_ROUTES``."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.view_name in NO_STORE_ROUTES:
            # Django's never_cache (the login and admin views) already says no-store among others.
            if "no-store" not in response.get("Cache-Control", ""):
                response["Cache-Control"] = "no-store"
        return response
