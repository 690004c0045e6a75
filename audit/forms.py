"""The history filters: every malformed value becomes a message on its field, never a 500."""

from __future__ import annotations

import datetime
import re

from django import forms
from django.utils import timezone

from audit.models import AuditEvent
from audit.queries import Records, cluster_model, history_of, search_details

OBJECT = re.compile(r"^(?P<type>[a-z_]+)(?::(?P<id>[A-Za-z0-9._-]+))?$")
MAX_ID = 2**63 - 1


def _moment(value: str, *, end: bool) -> datetime.datetime:
    """A date (the whole day) or an ISO date-time; naive values are in the server's time zone."""
    text = value.strip().replace(" ", "T", 1)
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            moment = datetime.datetime.combine(day, datetime.time.max if end else datetime.time.min)
        else:
            moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise forms.ValidationError(
            f"“{value}” is not a date or time; use 2026-11-27 or 2026-11-27T14:30 (optionally with a zone, +01:00)"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class HistoryFilterForm(forms.Form):
    cluster = forms.CharField(required=False, max_length=63)
    actor = forms.CharField(required=False, max_length=150, help_text="user name, or “system”")
    action = forms.CharField(
        required=False, max_length=64, help_text="e.g. token.created; end with “.” for a family: token."
    )
    object = forms.CharField(required=False, max_length=130, help_text="type or type:id, e.g. node:12")
    node = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)
    since = forms.CharField(required=False, max_length=40, help_text="2026-11-27 or 2026-11-27T14:30")
    until = forms.CharField(required=False, max_length=40)
    outcome = forms.ChoiceField(required=False, choices=[("", "any")] + list(AuditEvent.Outcome.choices))
    q = forms.CharField(required=False, max_length=200, label="Search details")
    correlation = forms.CharField(required=False, max_length=64, label="Correlation id")
    before = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID, widget=forms.HiddenInput)

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_since(self):
        value = self.cleaned_data["since"]
        return _moment(value, end=False) if value else None

    def clean_until(self):
        value = self.cleaned_data["until"]
        return _moment(value, end=True) if value else None

    def clean_object(self):
        value = self.cleaned_data["object"].strip()
        if value and not OBJECT.match(value):
            raise forms.ValidationError(f"“{value}” is not an object; use a type or type:id, e.g. node or node:12")
        return value

    def clean_cluster(self):
        return self.cleaned_data["cluster"].strip()

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "the end of the time range is before its start")
        if cleaned.get("before") and cleaned.get("after") is not None:
            raise forms.ValidationError("a page is either before or after a record, not both")
        return cleaned

    def apply(self, records: Records) -> Records:
        data = self.cleaned_data
        if data.get("cluster"):
            cluster = cluster_model().objects.filter(name=data["cluster"]).values_list("pk", flat=True).first()
            records = records.filter(cluster_id=cluster) if cluster else records.filter(cluster_name=data["cluster"])
        if data.get("actor"):
            records = records.filter(actor_name=data["actor"].strip())
        action = data.get("action", "").strip()
        if action:
            records = (
                records.filter(action__startswith=action.rstrip("*"))
                if action.endswith((".", "*"))
                else (records.filter(action=action))
            )
        if data.get("object"):
            match = OBJECT.match(data["object"])
            records = records.filter(object_type=match["type"])
            if match["id"]:
                records = records.filter(object_id=match["id"])
        if data.get("node"):
            records = records.filter(history_of("node").condition(data["node"]))
        if data.get("outcome"):
            records = records.filter(outcome=data["outcome"])
        if data.get("correlation"):
            records = records.filter(request_id=data["correlation"].strip())
        if data.get("since"):
            records = records.filter(created__gte=data["since"])
            first = AuditEvent.objects.filter(created__gte=data["since"]).order_by("created", "id").values("id")[:1]
            records = records.filter(id__gte=first)
        if data.get("until"):
            records = records.filter(created__lte=data["until"])
            last = AuditEvent.objects.filter(created__lte=data["until"]).order_by("-created", "-id").values("id")[:1]
            records = records.filter(id__lte=last)
        if data.get("q", "").strip():
            records = search_details(records, data["q"].strip())
        return records

    def query_string(self, **changes) -> str:
        """This filter as a query string, with ``changes`` (None removes a key)."""
        from urllib.parse import urlencode

        values = {name: self.data.get(name) for name in self.fields if self.data.get(name) not in (None, "")}
        for key in ("before", "after"):
            values.pop(key, None)
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        return urlencode(values)
