from django.apps import AppConfig


class DayTwoConfig(AppConfig):
    """Day two: upgrade, reset, certificates, etcd backup and restore, configuration in and out."""

    name = "daytwo"
    verbose_name = "Day two"

    def ready(self) -> None:
        from daytwo.backup import RESTORE, SNAPSHOT
        from daytwo.certificates import CERTIFICATE_INVENTORY, RENEW_CERTIFICATES
        from daytwo.reset import RESET
        from daytwo.upgrade import UPGRADE
        from operations.registry import register

        for kind in (UPGRADE, RESET, SNAPSHOT, RESTORE, CERTIFICATE_INVENTORY, RENEW_CERTIFICATES):
            register(kind)
