"""Forms behind the cluster page's own actions: engine settings, admin kubeconfig (initialize's and
join's, which span nouns, are workflows/cluster_forms.py)."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from clusters.models import Cluster
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
