from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate
        from django_q.signals import post_execute_in_worker, pre_enqueue, pre_execute

        from audit import context, siem, signals, triggers  # noqa: F401 (signals, siem: receivers)

        connection_created.connect(triggers.register_guard, dispatch_uid="audit_sqlite_guard")
        pre_enqueue.connect(context.task_enqueued, dispatch_uid="audit_task_context_carry")
        pre_execute.connect(context.task_started, dispatch_uid="audit_task_context_start")
        post_execute_in_worker.connect(context.task_finished, dispatch_uid="audit_task_context_end")
        post_migrate.connect(_schedule_verification, sender=self, dispatch_uid="audit_verify_schedule")


def _schedule_verification(using: str = "default", **kwargs) -> None:
    """The django-q2 schedule of ``audit.verification.scheduled_verify``: every minute; the task
    verifies when the last verification is older than KUBEBOARD_AUDIT_VERIFY_MINUTES."""
    from django_q.models import Schedule

    Schedule.objects.using(using).update_or_create(
        name="audit: verify",
        defaults={"func": "audit.verification.scheduled_verify", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )
