"""Forms that take a secret never send it back.

A form re-rendered after a mistake would otherwise put a pasted private key, kubeconfig or token
back into the page: into the browser's history, caches and screenshots, for a secret Kubeboard
promises to keep write-only. So a secret field's widget never renders a value, and once the form
has a mistake each secret that was submitted gets a note next to its field asking for it again
(the form's own mistakes and those a view adds later, such as a refused adoption, alike).
"""

from __future__ import annotations

from django import forms

RESUPPLY = {
    "paste": "For your safety it was not sent back: paste it again.",
    "upload": "For your safety the file was not kept: choose it again.",
    "type": "For your safety it was not sent back: type it again.",
}


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that is always rendered empty."""

    write_only = True

    def get_context(self, name, value, attrs):
        return super().get_context(name, None, attrs)


class WriteOnlyTextInput(forms.TextInput):
    """A text input that is always rendered empty (unlike a password input, what is typed shows)."""

    write_only = True

    def get_context(self, name, value, attrs):
        return super().get_context(name, None, attrs)


def is_write_only(widget: forms.Widget) -> bool:
    if isinstance(widget, forms.PasswordInput):
        return not widget.render_value
    return isinstance(widget, forms.FileInput) or getattr(widget, "write_only", False)


class SecretFieldsMixin:
    """For a form with ``secret_fields``: those are never rendered with a value, and after a
    mistake each one that was submitted says, next to the field, to supply it again."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            if not is_write_only(self.fields[name].widget):
                raise TypeError(f"{type(self).__name__}.{name} holds a secret but its widget would render it")

    def secret_was_submitted(self, name: str) -> bool:
        if not self.is_bound:
            return False
        key = self.add_prefix(name)
        if isinstance(self.fields[name].widget, forms.FileInput):
            return bool(self.files) and self.files.get(key) is not None
        return bool(str(self.data.get(key) or "").strip())

    def add_error(self, field, error) -> None:
        super().add_error(field, error)
        self.ask_for_secrets_again()

    def ask_for_secrets_again(self) -> None:
        """Put the note under each secret that was submitted; a view that shows the form again for
        a reason outside the form (a list of problems of its own) calls it too."""
        for name in self.secret_fields:
            if self.secret_was_submitted(name):
                widget = self.fields[name].widget
                how = (
                    "upload"
                    if isinstance(widget, forms.FileInput)
                    else "type"
                    if isinstance(widget, (forms.PasswordInput, forms.TextInput))
                    else "paste"
                )
                # Read by templates/form_fields.html under the field.
                self.fields[name].resupply = RESUPPLY[how]
