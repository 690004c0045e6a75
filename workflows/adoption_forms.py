"""The form for adopting a cluster through an admin kubeconfig."""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import Group

from clusters.models import Cluster
from clusters.validators import validate_cluster_name
from core.permissions import ADMIN, teams_for
from core.secret_forms import SecretFieldsMixin, WriteOnlyTextarea
from kubeadm.validation import CLUSTER_NAME_RULE

MAX_KUBECONFIG_BYTES = 256 * 1024


class AdoptClusterForm(SecretFieldsMixin, forms.Form):
    # The kubeconfig is an admin credential: never sent back, even after a mistake.
    secret_fields = ("kubeconfig_file", "kubeconfig_text")

    # The one name rule (kubeadm.validation), worded as on the new-cluster form.
    name = forms.CharField(
        validators=[validate_cluster_name],
        help_text=CLUSTER_NAME_RULE[0].upper() + CLUSTER_NAME_RULE[1:] + ".",
    )
    team = forms.ModelChoiceField(queryset=Group.objects.none(), help_text="The team that can see and operate it.")
    kubeconfig_file = forms.FileField(
        label="Admin kubeconfig file",
        required=False,
        help_text="For a kubeadm cluster: /etc/kubernetes/admin.conf of a control-plane node.",
    )
    kubeconfig_text = forms.CharField(
        label="or paste it",
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        help_text="Embedded credentials only (kubectl config view --raw --minify --flatten). Stored encrypted.",
    )

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams_for(user, ADMIN) if user is not None else Group.objects.none()

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Cluster.objects.filter(name=name).exists():
            raise forms.ValidationError(f"A cluster named {name!r} already exists; choose another name.")
        return name

    def clean(self) -> dict:
        cleaned = super().clean()
        upload = cleaned.get("kubeconfig_file")
        text = (cleaned.get("kubeconfig_text") or "").strip()
        if upload and text:
            raise forms.ValidationError("Upload a file or paste the kubeconfig, not both.")
        if upload:
            if upload.size > MAX_KUBECONFIG_BYTES:
                self.add_error("kubeconfig_file", f"A kubeconfig is a few KiB; this file has {upload.size} bytes.")
                return cleaned
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("kubeconfig_file", "This file is not UTF-8 text; upload the kubeconfig YAML file.")
                return cleaned
        if not text:
            self.add_error("kubeconfig_text", "Upload the admin kubeconfig or paste it here.")
        elif len(text) > MAX_KUBECONFIG_BYTES:
            self.add_error("kubeconfig_text", "A kubeconfig is a few KiB; this text is far longer.")
        cleaned["kubeconfig"] = text
        return cleaned
