from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django_q.signals import post_execute_in_worker, pre_enqueue, pre_execute

        from audit import context, siem, signals, triggers  # noqa: F401 (signals, siem: receivers)

        connection_created.connect(triggers.register_guard, dispatch_uid="audit_sqlite_guard")
        pre_enqueue.connect(context.task_enqueued, dispatch_uid="audit_task_context_carry")
        pre_execute.connect(context.task_started, dispatch_uid="audit_task_context_start")
        post_execute_in_worker.connect(context.task_finished, dispatch_uid="audit_task_context_end")
