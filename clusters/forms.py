from __future__ import annotations

from django import forms
from django.contrib.auth.models import Group

from clusters.kubeadm_config import FIELD_FOR_CONFIG_PATH, configuration_errors
from clusters.models import Cluster
from core.permissions import OPERATE, teams_for
from kubeadm import versions


class ClusterForm(forms.ModelForm):
    kubernetes_version = forms.CharField(
        label="Kubernetes version",
        initial=versions.DEFAULT_KUBERNETES_VERSION,
        help_text=f"Supported minors: {', '.join(versions.SUPPORTED_VERSIONS)} (for example {versions.DEFAULT_KUBERNETES_VERSION}).",
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "kubernetes_version",
            "control_plane_endpoint",
            "pod_subnet",
            "service_subnet",
            "dns_domain",
            "image_repository",
            "encryption_algorithm",
            "team",
        ]
        help_texts = {
            "name": "Lower-case letters, digits and '-', at most 63 characters (a DNS label).",
            "control_plane_endpoint": "host or host:port of the API server (load balancer or first control plane), e.g. 10.0.0.10:6443.",
            "pod_subnet": "CIDR for pod IPs, e.g. 10.244.0.0/16 (dual-stack: two CIDRs separated by a comma).",
            "service_subnet": "CIDR for service IPs; kubeadm's default is 10.96.0.0/12.",
        }

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pod_subnet"].initial = "10.244.0.0/16"
        # Only teams in which the user may run operations; every cluster belongs to a team.
        self.fields["team"].queryset = teams_for(user, OPERATE) if user is not None else Group.objects.none()
        self.fields["team"].required = True
        self.fields["team"].help_text = "The team that can see and operate this cluster."

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean(self) -> dict:
        cleaned = super().clean()
        values = {name: cleaned.get(name) for name in FIELD_FOR_CONFIG_PATH.values()}
        if any(values[name] is None for name in ("name", "kubernetes_version", "control_plane_endpoint")):
            return cleaned  # the field's own error is already shown
        for error in configuration_errors(values):
            field = FIELD_FOR_CONFIG_PATH.get(error.field)
            self.add_error(field if field in self.fields else None, str(error))
        return cleaned
