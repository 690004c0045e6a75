from __future__ import annotations

from django import forms

from operations.models import Operation
from operations.services import skippable_phases


class ResumeForm(forms.Form):
    """Resume from where the operation stopped, optionally skipping phases that have not finished."""

    skip = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Skip these phases")
    reason = forms.CharField(required=False, max_length=200, label="Why skip them")

    def __init__(self, operation: Operation, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.operation = operation
        # Only what the kind lets people skip (kubeadm's own phases for init and join), by the
        # phase's own name; the machine it runs on is said next to it.
        self.fields["skip"].choices = [
            (phase.label, f"{phase.name} on {phase.group}" if phase.group else phase.name)
            for phase in skippable_phases(operation)
        ]

    def clean(self):
        data = super().clean()
        if data.get("skip") and not data.get("reason", "").strip():
            self.add_error("reason", "Say why these phases are skipped; the reason goes into the audit trail.")
        return data
