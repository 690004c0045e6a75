from django import forms


class UploadForm(forms.Form):
    archive = forms.FileField(
        label="Artifact set archive",
        help_text="The set's directory as .tar or .tar.gz (kubernetes-version, architecture, SHA256SUMS, bin/, "
        "systemd/, images/).",
    )
