"""Public material of a cluster, one click away for anyone who may see the cluster: the CA
certificates (PEM), the CA-pin hash and the rendered kubeadm configuration. None of it is secret
(private keys stay behind the ADMIN role's reveal, which is audited); downloads are plain GETs."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from clusters.models import Cluster
from core.permissions import VIEW, get_object_for


def _download(text: str, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(text, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def ca_certificate(request: HttpRequest, name: str, ca: str) -> HttpResponse:
    cluster = get_object_for(request.user, VIEW, Cluster.objects.all(), name=name)
    authority = next((a for a in cluster.authorities.all() if a.slug == ca and a.certificate_pem), None)
    if authority is None:
        raise Http404(f"cluster {cluster.name} has no certificate authority {ca!r} with a certificate")
    return _download(authority.certificate_pem, f"{cluster.name}-{authority.slug}.crt", "application/x-pem-file")


@login_required
def ca_pin(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_for(request.user, VIEW, Cluster.objects.all(), name=name)
    if not cluster.ca_pin_hash:
        raise Http404(f"cluster {cluster.name} has no CA-pin hash yet (its identity is not prepared)")
    return _download(cluster.ca_pin_hash + "\n", f"{cluster.name}-ca-pin.txt", "text/plain")


@login_required
def kubeadm_config(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_for(request.user, VIEW, Cluster.objects.all(), name=name)
    if not cluster.kubeadm_config:
        raise Http404(f"cluster {cluster.name} has no rendered kubeadm configuration yet")
    return _download(cluster.kubeadm_config, f"{cluster.name}-kubeadm-config.yaml", "application/yaml")
