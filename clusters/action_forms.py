"""Forms behind the cluster page's own actions: engine settings, pod network, admin kubeconfig
(initialize's and join's, which span nouns, are workflows/cluster_forms.py)."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from clusters import pod_network
from clusters.models import Cluster, PodNetworkManifest
from clusters.validators import validate_ignore_preflight_errors
from kubeadm.preflight import parse_check_list


class EngineSettingsForm(forms.ModelForm):
    ignore_preflight_errors = forms.CharField(
        label="Ignore preflight errors",
        required=False,
        help_text="kubeadm check names separated by commas, for every machine of this cluster "
        "(each machine can add its own), e.g. NumCPU, Mem.",
    )

    class Meta:
        model = Cluster
        fields = ["join_parallelism", "control_plane_join_method"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("ignore_preflight_errors", ", ".join(self.instance.ignore_preflight_errors or []))

    def clean_ignore_preflight_errors(self) -> list[str]:
        names = parse_check_list(self.cleaned_data.get("ignore_preflight_errors", ""))
        validate_ignore_preflight_errors(names)
        return names

    def save(self, commit: bool = True) -> Cluster:
        self.instance.ignore_preflight_errors = self.cleaned_data["ignore_preflight_errors"]
        return super().save(commit=commit)


class PodNetworkForm(pod_network.PodNetworkChoiceForm, forms.ModelForm):
    """The pod network chosen for a cluster after it was created (or adopted): saved here, applied
    by the pod-network operation (the next step offers it while the choice is not rolled out)."""

    class Meta:
        model = Cluster
        fields = ["pod_network", "pod_network_registry"]
        help_texts = {
            "pod_network_registry": "Pull the pod network's images from this registry instead of upstream's "
            "(air-gapped sites), e.g. registry.local:5000; empty: upstream's.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cluster = self.instance
        if cluster.pod_network in pod_network.OFFERED_NETWORKS:
            self.initial["pod_network"] = f"{cluster.pod_network} {cluster.pod_network_version}"
        elif cluster.pod_network == "":
            self.initial["pod_network"] = pod_network.default_for(cluster.pod_subnet)

    def fit(self, network: str) -> list[str]:
        return pod_network.cluster_fit_problems(self.instance, network)

    def stored_manifest(self) -> PodNetworkManifest | None:
        return PodNetworkManifest.objects.filter(cluster=self.instance).only("sha256").first()

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("pod_network"):
            network = self.clean_pod_network_choice(cleaned["pod_network"])
            if "pod_network" not in self.errors:
                cleaned["pod_network"] = network
        return cleaned


class KubeconfigForm(forms.Form):
    TTLS = {"1h": timedelta(hours=1), "8h": timedelta(hours=8), "24h": timedelta(hours=24)}

    ttl = forms.ChoiceField(
        choices=[("1h", "1 hour"), ("8h", "8 hours"), ("24h", "24 hours")],
        initial="1h",
        label="Valid for",
        help_text="The kubeconfig carries its own client certificate, which stops working after this.",
    )

    def cleaned_ttl(self) -> timedelta:
        return self.TTLS[self.cleaned_data["ttl"]]
