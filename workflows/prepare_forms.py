"""Forms behind Prepare machine (workflows.prepare): which machines, and the cluster's source."""

from __future__ import annotations

from django import forms

from core.form_fields import BoundedModelMultipleChoiceField
from nodes.models import Node
from workflows.models import PrepareSettings
from workflows.prepare import SETTINGS_FIELDS


class PrepareForm(forms.Form):
    nodes = BoundedModelMultipleChoiceField(
        queryset=Node.objects.none(), widget=forms.CheckboxSelectMultiple, label="Machines to prepare"
    )
    dry_run = forms.BooleanField(
        required=False, label="Dry run", help_text="List what each step would change; change nothing."
    )

    def __init__(self, *args, cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Any machine of the cluster may be named (a joined one is refused by the service, with
        # the reason); the page offers the preparable ones (workflows.prepare.preparable).
        self.fields["nodes"].queryset = cluster.nodes.order_by("name")


class PrepareSettingsForm(forms.ModelForm):
    class Meta:
        model = PrepareSettings
        fields = list(SETTINGS_FIELDS)
        widgets = {"source": forms.RadioSelect, "registry_mirrors": forms.Textarea(attrs={"rows": 3})}
