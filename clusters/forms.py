from __future__ import annotations

from django import forms
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator

from clusters import pod_network
from clusters.endpoint import EndpointChoiceForm
from clusters.kubeadm_config import FIELD_FOR_CONFIG_PATH, configuration_errors, field_message
from clusters.models import Cluster
from core.permissions import OPERATE, teams_for
from kubeadm import versions
from kubeadm.config import DEFAULT_SERVICE_SUBNET
from kubeadm.errors import UnsupportedVersionError
from kubeadm.validation import CLUSTER_NAME_RULE


class KubernetesVersionField(forms.CharField):
    """A choice of the supported versions (newest patch of each minor, newest first); a typed
    "1.37" or "v1.37" (a script's POST) means the newest patch of that minor."""

    widget = forms.Select

    def __init__(self, **kwargs) -> None:
        offered = versions.offered_versions()
        kwargs.setdefault("initial", offered[0])
        super().__init__(**kwargs)
        self.widget.choices = [(v, f"{v} (newest)" if i == 0 else v) for i, v in enumerate(offered)]

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return value
        try:
            return versions.resolve_version(value)
        except UnsupportedVersionError as exc:
            raise ValidationError(field_message(exc), code="unsupported") from None


_STAND_INS = {
    "name": "stand-in",
    "kubernetes_version": versions.DEFAULT_KUBERNETES_VERSION,
    "control_plane_endpoint": "stand-in.invalid",
}


class ClusterForm(EndpointChoiceForm, pod_network.PodNetworkChoiceForm, forms.ModelForm):
    # Not required: a POST without it (a script's) gets the default, as the unbound form shows it.
    pod_network = pod_network.PodNetworkField(required=False)
    kubernetes_version = KubernetesVersionField(
        label="Kubernetes version",
        help_text="The newest patch of each Kubernetes minor this Kubeboard deploys.",
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "kubernetes_version",
            "control_plane_endpoint",
            "pod_subnet",
            "service_subnet",
            "pod_network",
            "pod_network_registry",
            "dns_domain",
            "image_repository",
            "encryption_algorithm",
            "team",
        ]
        help_texts = {
            "name": CLUSTER_NAME_RULE[0].upper() + CLUSTER_NAME_RULE[1:] + ".",
            "control_plane_endpoint": "host or host:port of the API server (load balancer or first control plane), "
            "without a scheme, e.g. 10.0.0.10:6443.",
            "pod_subnet": "CIDR for pod IPs, e.g. 10.244.0.0/16 (dual-stack: two CIDRs separated by a comma).",
            "service_subnet": f"CIDR for service IPs; kubeadm's default is {DEFAULT_SERVICE_SUBNET}.",
            "pod_network_registry": "Pull the pod network's images from this registry instead of upstream's "
            "(air-gapped sites), e.g. registry.local:5000; empty: upstream's.",
        }

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pod_subnet"].initial = "10.244.0.0/16"
        self.fields["pod_network"].initial = pod_network.default_for(self.fields["pod_subnet"].initial)
        # Only teams in which the user may run operations; every cluster belongs to a team.
        self.fields["team"].queryset = teams_for(user, OPERATE) if user is not None else Group.objects.none()
        self.fields["team"].required = True
        self.fields["team"].help_text = "The team that can see and operate this cluster."
        teams = list(self.fields["team"].queryset[:2])
        if len(teams) == 1 and not self.is_bound:
            self.fields["team"].initial = teams[0].pk
        # One rule, one message for the name: kubeadm.validation's DNS-label rule says "63" itself.
        name = self.fields["name"]
        name.validators = [v for v in name.validators if not isinstance(v, MaxLengthValidator)]

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean(self) -> dict:
        cleaned = super().clean()
        values = {name: cleaned.get(name) for name in FIELD_FOR_CONFIG_PATH.values()}
        # A field that failed on its own stands in with a valid value, so every other mistake is
        # still reported in the same round trip (and the failed field keeps its one message).
        for name, stand_in in _STAND_INS.items():
            if not values[name]:
                values[name] = stand_in
        for error in configuration_errors(values):
            field = FIELD_FOR_CONFIG_PATH.get(error.field)
            if field in self.errors:
                continue
            if field in self.fields:
                self.add_error(field, field_message(error))
            else:
                self.add_error(None, str(error))
        self._clean_pod_network(cleaned)
        return cleaned

    def _clean_pod_network(self, cleaned: dict) -> None:
        """The choice (or the default for the pod subnet given) checked against the subnets and
        the control-plane endpoint, each reason under the Pod network field."""
        value = cleaned.get("pod_network") or pod_network.default_for(cleaned.get("pod_subnet") or "")
        network = self.clean_pod_network_choice(value)
        if "pod_network" not in self.errors:
            cleaned["pod_network"] = network

    def fit(self, network: str) -> list[str]:
        if "pod_subnet" in self.errors or "service_subnet" in self.errors:
            return []  # the subnet's own mistake is the one to fix first
        cleaned = self.cleaned_data
        return pod_network.fit_problems(
            network,
            pod_subnet=cleaned.get("pod_subnet") or "",
            service_subnet=cleaned.get("service_subnet") or "",
            control_plane_endpoint=cleaned.get("control_plane_endpoint") or "",
        )


class DeleteClusterForm(forms.Form):
    """Deleting a cluster cannot be undone: the person types its name."""

    confirm = forms.CharField(label="Type the cluster's name to confirm", max_length=63)

    def __init__(self, *args, cluster: Cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.fields["confirm"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        if typed != self.cluster.name:
            raise ValidationError(f"type {self.cluster.name} exactly to delete this cluster (you typed {typed!r})")
        return typed
