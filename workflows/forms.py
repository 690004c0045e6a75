"""Forms of the day-two pages: they validate; the services in workflows/ refuse or act."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth.models import Group

from clusters.models import Cluster
from core.permissions import OPERATE, teams_for
from core.secret_forms import SecretFieldsMixin, WriteOnlyTextarea
from kubeadm import workflow
from nodes.models import Node
from workflows import reset
from workflows.models import BackupSchedule, DayTwoSettings, RenewalPolicy

MAX_IMPORT_BYTES = 256 * 1024


class UpgradeForm(forms.Form):
    target = forms.CharField(label="Target version", max_length=32, help_text="e.g. v1.37.2")
    batch_size = forms.IntegerField(
        label="Workers upgraded at once", min_value=1, max_value=50, initial=1, required=False
    )


class ResetForm(forms.Form):
    node = forms.ModelChoiceField(queryset=Node.objects.none(), label="Machine")
    confirm = forms.CharField(
        label="Type the machine's name to confirm",
        max_length=63,
        help_text="Its Pods are evicted, kubeadm reset deletes everything kubeadm put on it, its tokens are revoked.",
    )

    def __init__(self, *args, cluster: Cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].queryset = reset.resettable(cluster).order_by("role", "name")
        self.fields["node"].label_from_instance = lambda node: f"{node.name} ({node.get_role_display().lower()})"


CERTIFICATE_CHOICES = [("all", "all of them")] + [(name, name) for name in workflow.CERTS_RENEW_NAMES]


class RenewForm(forms.Form):
    names = forms.MultipleChoiceField(
        label="Certificates", choices=CERTIFICATE_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )
    add_sans = forms.CharField(
        label="Add SANs to the API server certificate",
        required=False,
        max_length=1000,
        help_text="DNS names or IP addresses, separated by commas (e.g. api.example.com, 10.0.0.10).",
    )

    def clean_add_sans(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["add_sans"].split(",") if part.strip()]

    def clean(self) -> dict:
        cleaned = super().clean()
        if not cleaned.get("names") and not cleaned.get("add_sans"):
            raise forms.ValidationError("Choose the certificates to renew, or a SAN to add.")
        return cleaned


class RenewalPolicyForm(forms.ModelForm):
    class Meta:
        model = RenewalPolicy
        fields = ["enabled", "renew_below_days"]


class BackupScheduleForm(forms.ModelForm):
    class Meta:
        model = BackupSchedule
        fields = ["enabled", "interval_hours", "keep"]


class RestoreForm(forms.Form):
    confirm = forms.CharField(
        label="Type the cluster's name to confirm",
        max_length=63,
        help_text="Everything written to the cluster after the snapshot is lost; a snapshot of the current "
        "state is taken first.",
    )


class DayTwoSettingsForm(forms.ModelForm):
    upgrade_ignore_preflight_errors = forms.CharField(
        label="Upgrade preflight checks to ignore",
        required=False,
        help_text="kubeadm check names, comma separated (the test bed needs CreateJob and the CRI checks).",
    )

    class Meta:
        model = DayTwoSettings
        fields = [
            "kubeadm_package_command",
            "kubelet_package_command",
            "upgrade_batch_size",
            "upgrade_ignore_preflight_errors",
            "etcdctl",
            "etcdutl",
        ]
        widgets = {
            "kubeadm_package_command": forms.TextInput(attrs={"size": 80}),
            "kubelet_package_command": forms.TextInput(attrs={"size": 80}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.pk:
            self.initial["upgrade_ignore_preflight_errors"] = ", ".join(
                self.instance.upgrade_ignore_preflight_errors or []
            )

    def clean_upgrade_ignore_preflight_errors(self) -> list[str]:
        from kubeadm.errors import ConfigError
        from kubeadm.preflight import normalize_ignore_list

        names = [n.strip() for n in self.cleaned_data["upgrade_ignore_preflight_errors"].split(",") if n.strip()]
        try:
            return normalize_ignore_list(names)
        except ConfigError as exc:
            raise forms.ValidationError(str(exc)) from None


# A kubeadm file may carry secrets (bootstrapTokens[].token, certificateKey); such a file is
# treated as one and never sent back.
_SECRET_IN_CONFIG = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b|certificateKey\s*:\s*['\"]?[0-9a-fA-F]")


class ImportForm(SecretFieldsMixin, forms.Form):
    name = forms.CharField(max_length=63, help_text="The new cluster's name in Kubeboard (a DNS label).")
    team = forms.ModelChoiceField(queryset=Group.objects.none(), help_text="The team that can see and operate it.")
    file = forms.FileField(
        label="kubeadm configuration file",
        required=False,
        help_text="kubeadm.k8s.io/v1beta3 or v1beta4 YAML with a ClusterConfiguration (InitConfiguration optional).",
    )
    text = forms.CharField(label="…or paste it", widget=forms.Textarea(attrs={"rows": 14}), required=False)

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams_for(user, OPERATE) if user is not None else Group.objects.none()
        if self.is_bound and _SECRET_IN_CONFIG.search(str(self.data.get(self.add_prefix("text")) or "")):
            self.fields["text"].widget = WriteOnlyTextarea(attrs=self.fields["text"].widget.attrs)
            self.secret_fields = ("text",)

    def clean(self) -> dict:
        cleaned = super().clean()
        upload = cleaned.get("file")
        text = cleaned.get("text") or ""
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise forms.ValidationError(f"The file is larger than {MAX_IMPORT_BYTES // 1024} KiB.")
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        if not text.strip():
            raise forms.ValidationError("Upload a kubeadm configuration file or paste one.")
        cleaned["config_text"] = text
        return cleaned
