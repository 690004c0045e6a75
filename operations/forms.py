from __future__ import annotations

from django import forms

from operations.models import Operation, PhaseRun


class ResumeForm(forms.Form):
    """Resume from where the operation stopped, optionally skipping phases that have not finished."""

    skip = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Skip these phases")
    reason = forms.CharField(required=False, max_length=200, label="Why skip them")

    def __init__(self, operation: Operation, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.operation = operation
        phases = operation.phases.exclude(status__in=PhaseRun.DONE_STATUSES).order_by("order")
        self.fields["skip"].choices = [(phase.label, phase.label) for phase in phases]

    def clean(self):
        data = super().clean()
        if data.get("skip") and not data.get("reason", "").strip():
            self.add_error("reason", "Say why these phases are skipped; the reason goes into the audit trail.")
        return data
