from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """The operations that span nouns: upgrade, reset, certificates, etcd backup and restore,
    configuration in and out, adoption, init, join and read-back."""

    name = "workflows"
    # The app was called daytwo: its label stays, so the tables (daytwo_*), the migrations'
    # app label, other apps' migration dependencies and content types stay valid without a
    # migration.
    label = "daytwo"
    verbose_name = "Day two"

    def ready(self) -> None:
        from artifacts.services import register_use_finder
        from clusters.commandline import register_subcommands
        from operations.registry import register
        from workflows.artifact_uses import find_uses
        from workflows.backup import RESTORE, SNAPSHOT
        from workflows.certificates import CERTIFICATE_INVENTORY, RENEW_CERTIFICATES
        from workflows.commands import SUBCOMMANDS
        from workflows.init import INIT
        from workflows.join import JOIN_CONTROL_PLANE, JOIN_WORKERS
        from workflows.network import POD_NETWORK
        from workflows.prepare import PREPARE
        from workflows.readback import READ_BACK
        from workflows.reset import RESET
        from workflows.scheduling import KINDS as SCHEDULING
        from workflows.upgrade import UPGRADE

        # What needs an artifact set (clusters, machines, operations) is known here, not in artifacts/.
        register_use_finder(find_uses)

        # manage.py cluster and node live with their nouns, which may not import workflows.
        for command, groups in SUBCOMMANDS.items():
            for subcommands in groups:
                register_subcommands(command, subcommands)

        for kind in (
            INIT,
            JOIN_WORKERS,
            JOIN_CONTROL_PLANE,
            UPGRADE,
            RESET,
            SNAPSHOT,
            RESTORE,
            CERTIFICATE_INVENTORY,
            RENEW_CERTIFICATES,
            READ_BACK,
            PREPARE,
            POD_NETWORK,
            *SCHEDULING,
        ):
            register(kind)
