from django import forms
from django.core.exceptions import ValidationError

from artifacts.models import ArtifactSet


class UploadForm(forms.Form):
    archive = forms.FileField(
        label="Artifact set archive",
        help_text="The set's directory as .tar or .tar.gz (kubernetes-version, architecture, SHA256SUMS, bin/, "
        "systemd/, images/).",
    )


class DeleteSetForm(forms.Form):
    """Deleting a set frees its disk space and cannot be undone here (only by importing it again):
    the person types its name, as for a cluster."""

    confirm = forms.CharField(label="Type the set's name to confirm", max_length=64)

    def __init__(self, *args, artifact_set: ArtifactSet, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.artifact_set = artifact_set
        self.fields["confirm"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        if typed != self.artifact_set.name:
            raise ValidationError(
                f"type {self.artifact_set.name} exactly to delete this set (you typed {typed[:64]!r})"
            )
        return typed
