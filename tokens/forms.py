"""Forms for tokens and token policies. Validation rules live in ``tokens.policies``; forms
turn their messages into field errors."""

from __future__ import annotations

import datetime
import re
from datetime import timedelta

from django import forms
from django.utils import timezone

from core.formatting import duration_words
from core.secret_forms import SecretFieldsMixin, WriteOnlyTextInput
from kubeadm import tokens as kubeadm_tokens
from kubeadm.durations import MAX_DURATION, parse_duration
from kubeadm.errors import DurationError, DurationRangeError
from tokens.models import BootstrapToken, TokenPolicy
from tokens.policies import TokenError, check_request, human
from tokens.services import POLICY_FIELDS

_DAYS_RE = re.compile(r"([0-9]+)d(.*)")
# The longest duration kubeadm (Go's time.Duration) holds; a longer TTL could not be written out.
_TOO_LONG = f"at most {MAX_DURATION.days} days (about 292 years)"


def parse_ttl(text: str) -> timedelta:
    """A Go duration ("24h", "1h30m", "90s") or days ("7d", "1d12h"), at most MAX_DURATION."""
    text = text.strip()
    shown = text if len(text) <= 40 else text[:40] + "…"
    days = timedelta(0)
    match = _DAYS_RE.fullmatch(text)
    if match:
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > len(str(MAX_DURATION.days)) or int(digits) > MAX_DURATION.days:
            raise forms.ValidationError(f"{shown!r} is too long; a duration is {_TOO_LONG}", code="max_value")
        days = timedelta(days=int(digits))
        text = match.group(2)
        if not text:
            return days
    try:
        total = days + parse_duration(text, field="lifetime")
    except DurationRangeError:
        raise forms.ValidationError(f"{shown!r} is too long; a duration is {_TOO_LONG}", code="max_value") from None
    except DurationError:
        raise forms.ValidationError(
            f"{shown!r} is not a duration; write it like 24h, 1h30m, 45m or 7d", code="invalid"
        ) from None
    if total > MAX_DURATION:
        raise forms.ValidationError(f"{shown!r} is too long; a duration is {_TOO_LONG}", code="max_value")
    return total


class DurationTextField(forms.CharField):
    """A duration typed as people (and kubeadm) write them: 24h, 90m, 7d."""

    # "1d2h3m4s" is 8 characters; a screenful is a mistake, refused before it is parsed.
    MAX_CHARS = 64

    def widget_attrs(self, widget):
        return {**super().widget_attrs(widget), "maxlength": str(self.MAX_CHARS)}

    def prepare_value(self, value):
        return human(value) if isinstance(value, timedelta) else value

    def to_python(self, value):
        value = super().to_python(value)
        if value and len(value) > self.MAX_CHARS:
            raise forms.ValidationError(
                f"a duration is at most {self.MAX_CHARS} characters, this one has {len(value)}", code="max_length"
            )
        return parse_ttl(value) if value else None


def split_list(text: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", text or "") if item]


class TokenForm(SecretFieldsMixin, forms.Form):
    # A token given by the person is a credential to join the cluster: never sent back.
    secret_fields = ("token",)

    token = forms.CharField(
        label="Token",
        required=False,
        max_length=23,
        help_text="Leave empty for a random token, or give one in kubeadm's form [a-z0-9]{6}.[a-z0-9]{16}.",
        widget=WriteOnlyTextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    ttl = DurationTextField(
        label="Lifetime (TTL)",
        required=False,
        help_text="How long the token is valid, e.g. 24h, 2h30m, 7d. Leave empty for the cluster's default.",
    )
    expires_at = forms.DateTimeField(
        label="or expiry date (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    description = forms.CharField(required=False, max_length=255)
    usages = forms.MultipleChoiceField(
        choices=[(usage, usage) for usage in kubeadm_tokens.KNOWN_USAGES],
        initial=list(kubeadm_tokens.DEFAULT_USAGES),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": "unknown usage %(value)s; a bootstrap token's usages are signing and authentication"
        },
        help_text="Both are needed to join nodes (discovery signs cluster-info; authentication does TLS bootstrap).",
    )
    groups = forms.CharField(
        label="Extra groups",
        required=False,
        initial=", ".join(kubeadm_tokens.DEFAULT_GROUPS),
        help_text="Comma-separated; each must match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9].",
    )
    auto_rotate = forms.BooleanField(
        label="Rotate automatically",
        required=False,
        help_text="Make a successor before this token expires (the policy's rotate-before time) and retire this "
        "one after the grace period.",
    )

    def __init__(self, *args, cluster, policy: TokenPolicy, now: datetime.datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.policy = policy
        self.now = now or timezone.now()
        self.fields["ttl"].widget.attrs["placeholder"] = human(policy.default_ttl)
        self.fields["ttl"].help_text += f" At most {duration_words(policy.max_ttl)}."

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, datetime.UTC)
        return value

    def clean_groups(self) -> list[str]:
        return split_list(self.cleaned_data.get("groups", ""))

    def clean_token(self) -> str:
        value = (self.cleaned_data.get("token") or "").strip()
        if value and BootstrapToken.objects.filter(cluster=self.cluster, token_id=value.partition(".")[0]).exists():
            raise forms.ValidationError(
                f"token id {value.partition('.')[0]} already exists in this cluster; choose another id or leave the "
                "field empty for a random token"
            )
        return value

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            check_request(
                self.policy,
                now=self.now,
                token=cleaned.get("token") or None,
                ttl=cleaned.get("ttl"),
                expires_at=cleaned.get("expires_at"),
                description=cleaned.get("description", ""),
                usages=cleaned.get("usages") or (),
                groups=cleaned.get("groups") or (),
            )
        except TokenError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, str(exc))
        return cleaned


class TokenPolicyForm(forms.ModelForm):
    default_ttl = DurationTextField(
        label="Default lifetime (TTL)", help_text="Lifetime of tokens created without one, e.g. 24h."
    )
    max_ttl = DurationTextField(label="Maximum lifetime (TTL)", help_text="No token may be created with a longer one.")
    max_lifetime = DurationTextField(
        label="Hard maximum lifetime",
        help_text="No token — and no rotation chain for a node that never joins — stays valid longer, e.g. 30d.",
    )
    rotate_before = DurationTextField(
        label="Rotate before expiry",
        help_text="Tokens marked for rotation get their successor this long before they expire.",
    )
    rotation_grace = DurationTextField(
        label="Grace after rotation", help_text="How long the old token stays valid once its successor exists."
    )

    class Meta:
        model = TokenPolicy
        # What the form edits is what update_policy compares and audits.
        fields = list(POLICY_FIELDS)

    def clean(self) -> dict:
        cleaned = super().clean()
        values = {
            name: cleaned.get(name)
            for name in ("default_ttl", "max_ttl", "max_lifetime", "rotate_before", "rotation_grace")
        }
        for name, value in values.items():
            if value is not None and value <= timedelta(0):
                self.add_error(name, "must be longer than zero")
        if self.errors:
            return cleaned
        if values["default_ttl"] > values["max_ttl"]:
            self.add_error("default_ttl", f"longer than the maximum TTL ({duration_words(values['max_ttl'])})")
        if values["max_ttl"] > values["max_lifetime"]:
            self.add_error(
                "max_ttl", f"longer than the hard maximum lifetime ({duration_words(values['max_lifetime'])})"
            )
        if values["rotate_before"] >= values["default_ttl"]:
            self.add_error(
                "rotate_before",
                f"must be shorter than the default TTL ({duration_words(values['default_ttl'])}), or every new "
                "token would be rotated at once",
            )
        return cleaned


class JoinCommandForm(forms.Form):
    role = forms.ChoiceField(choices=[("worker", "Worker"), ("control-plane", "Control plane")], initial="worker")
