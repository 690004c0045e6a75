"""Saving day-two settings, schedules and policies: one transaction and one audit record each."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import record


def _changes(before: dict, after: dict) -> dict:
    return {key: {"from": before.get(key), "to": value} for key, value in after.items() if before.get(key) != value}


def save_settings(form, *, user):
    """A validated DayTwoSettingsForm. Package commands run as root on every machine: only an
    admin of the team may change them (the view checks), and every change is recorded."""
    fields = list(form.Meta.fields)
    before = {f: getattr(type(form.instance).objects.filter(pk=form.instance.pk).first(), f, None) for f in fields}
    with transaction.atomic():
        saved = form.save()
        after = {f: getattr(saved, f) for f in fields}
        record(
            "cluster.day2_settings_changed",
            actor=user,
            obj=saved.cluster,
            cluster=saved.cluster,
            details=_changes(before, after),
        )
    return saved


def save_backup_schedule(form, *, user):
    with transaction.atomic():
        schedule = form.save(commit=False)
        schedule.next_run_at = timezone.now() + timedelta(hours=schedule.interval_hours) if schedule.enabled else None
        schedule.save()
        record(
            "backup_schedule.changed",
            actor=user,
            obj=schedule.cluster,
            cluster=schedule.cluster,
            details={"enabled": schedule.enabled, "interval_hours": schedule.interval_hours, "keep": schedule.keep},
        )
    return schedule


def save_renewal_policy(form, *, user):
    with transaction.atomic():
        policy = form.save(commit=False)
        # Checked at once when switched on, then twice a day.
        policy.next_check_at = timezone.now() if policy.enabled else None
        policy.save()
        record(
            "renewal_policy.changed",
            actor=user,
            obj=policy.cluster,
            cluster=policy.cluster,
            details={"enabled": policy.enabled, "renew_below_days": policy.renew_below_days},
        )
    return policy
