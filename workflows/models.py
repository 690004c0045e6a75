"""What day-two work keeps: per-cluster settings, etcd snapshots (encrypted, with their
checksum), backup schedules, certificate renewal policies, and the certificates read from each
control-plane machine."""

from __future__ import annotations

import string

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from clusters.validators import validate_ignore_preflight_errors
from core.encryption import EncryptedTextField

# What a package command may use; anything else in braces is refused (a typo would install
# the wrong thing).
PACKAGE_PLACEHOLDERS = ("version", "version_number", "minor")


def validate_package_command(value: str) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise ValidationError(f"not a valid command template: {exc} (write a literal brace as {{{{ or }}}})") from None
    unknown = sorted({name for name in fields if name not in PACKAGE_PLACEHOLDERS})
    if unknown:
        raise ValidationError(
            f"unknown placeholder {', '.join('{' + n + '}' for n in unknown)}; use "
            + ", ".join("{" + n + "}" for n in PACKAGE_PLACEHOLDERS)
        )
    if "\n" in value.strip():
        raise ValidationError("one line: chain several commands with && instead")


_PROGRAM = RegexValidator(r"^[A-Za-z0-9_./-]+$", "a program name or absolute path, without spaces or options")


class DayTwoSettings(models.Model):
    """How Kubeboard upgrades and backs up one cluster's machines."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="day2_settings")
    kubeadm_package_command = models.TextField(
        "kubeadm package command",
        blank=True,
        validators=[validate_package_command],
        help_text=(
            "Run as root on each machine before kubeadm upgrade (placeholders {version} = v1.37.2, "
            "{version_number} = 1.37.2, {minor} = 1.37). Empty: the machines already have the target kubeadm."
        ),
    )
    kubelet_package_command = models.TextField(
        "kubelet package command",
        blank=True,
        validators=[validate_package_command],
        help_text=(
            "Run as root on each machine after kubeadm upgrade, while it is drained: install the kubelet "
            "and restart it. Empty: the kubelet is left as it is."
        ),
    )
    upgrade_batch_size = models.PositiveSmallIntegerField(
        "workers upgraded at once",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="Control planes are always upgraded one at a time.",
    )
    upgrade_ignore_preflight_errors = models.JSONField(
        "upgrade preflight checks to ignore",
        default=list,
        blank=True,
        validators=[validate_ignore_preflight_errors],
        help_text="Added to the cluster's and the machine's lists for kubeadm upgrade's preflight (e.g. CreateJob).",
    )
    etcdctl = models.CharField(max_length=200, default="etcdctl", validators=[_PROGRAM])
    etcdutl = models.CharField(max_length=200, default="etcdutl", validators=[_PROGRAM])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "day-two settings"
        verbose_name_plural = "day-two settings"

    def __str__(self) -> str:
        return f"{self.cluster.name} day-two settings"


class EtcdSnapshot(models.Model):
    """One ``etcdctl snapshot save`` copied back from a control-plane machine, stored encrypted
    in chunks with the SHA-256 of the whole file and what ``etcdutl snapshot status`` said."""

    class Status(models.TextChoices):
        CREATING = "creating", "Being taken"
        AVAILABLE = "available", "Available"
        FAILED = "failed", "Failed"

    class Reason(models.TextChoices):
        MANUAL = "manual", "Taken by hand"
        SCHEDULED = "scheduled", "Scheduled"
        PRE_UPGRADE = "pre-upgrade", "Before an upgrade"
        PRE_RESTORE = "pre-restore", "Before a restore"

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="etcd_snapshots")
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    node_name = models.CharField(max_length=63, blank=True)
    operation = models.ForeignKey(
        "operations.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="etcd_snapshots"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MANUAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATING)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    # From `etcdutl snapshot status -w json` on the machine.
    revision = models.BigIntegerField(null=True, blank=True)
    total_keys = models.BigIntegerField(null=True, blank=True)
    etcd_hash = models.BigIntegerField(null=True, blank=True)
    etcd_version = models.CharField(max_length=32, blank=True)
    kubernetes_version = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"etcd snapshot #{self.pk} of {self.cluster.name}"

    @property
    def file_name(self) -> str:
        return f"{self.cluster.name}-etcd-{self.created_at:%Y%m%dT%H%M%SZ}-{self.pk}.db"


class SnapshotChunk(models.Model):
    """A piece of a snapshot (base64 of at most CHUNK_BYTES, encrypted like every secret)."""

    snapshot = models.ForeignKey(EtcdSnapshot, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    data = EncryptedTextField()

    TEAM_PATH = "snapshot__cluster__team"

    class Meta:
        ordering = ["snapshot", "index"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "index"], name="unique_snapshot_chunk")]


class BackupSchedule(models.Model):
    """Take an etcd snapshot every ``interval_hours`` and keep the newest ``keep`` scheduled ones."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="backup_schedule")
    enabled = models.BooleanField(default=False)
    interval_hours = models.PositiveIntegerField(
        "every (hours)", default=24, validators=[MinValueValidator(1), MaxValueValidator(24 * 30)]
    )
    keep = models.PositiveIntegerField(
        "keep the newest", default=7, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.cluster.name} backup schedule"


class RenewalPolicy(models.Model):
    """Renew the control planes' certificates once the soonest one has less than ``renew_below_days`` left."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="renewal_policy")
    enabled = models.BooleanField(default=False)
    renew_below_days = models.PositiveIntegerField(
        "renew when fewer days remain than", default=30, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "renewal policies"

    def __str__(self) -> str:
        return f"{self.cluster.name} certificate renewal policy"


class CertificateReport(models.Model):
    """The certificates of one control-plane machine as last read from it: every file under
    /etc/kubernetes/pki and the kubeconfigs' client certificates (never a key), kubeadm's own
    ``certs check-expiration`` table, and how each compares with Kubeboard's custody."""

    node = models.OneToOneField("nodes.Node", on_delete=models.CASCADE, related_name="certificate_report")
    collected_at = models.DateTimeField(null=True, blank=True)
    # Rows of kubeadm.readback.certificate_row, with "warning" and "kubeadm_expires" added by
    # workflows.certificates.build_rows.
    rows = models.JSONField(default=list, blank=True)
    check_expiration = models.TextField(blank=True)
    error = models.TextField(blank=True)

    TEAM_PATH = "node__cluster__team"

    def __str__(self) -> str:
        return f"certificates of {self.node}"


class StoredConfiguration(models.Model):
    """The cluster's kubeadm ClusterConfiguration beyond the cluster form's fields: what an
    imported kubeadm file said (migrated to v1beta4) and day-two changes such as an added
    API server SAN. The form's fields (name, version, endpoint, subnets, ...) are laid over it
    when Kubeboard renders the configuration (clusters.kubeadm_config)."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="stored_configuration")
    # v1beta4 ClusterConfiguration YAML, as kubeadm config migrate would print it.
    text = models.TextField()
    # The file as the user gave it (v1beta3 or v1beta4), kept for the record.
    original_text = models.TextField(blank=True)
    original_api_version = models.CharField(max_length=64, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.cluster.name} stored kubeadm configuration"


def validate_registry_mirrors(value: str) -> None:
    from kubeadm.prepare import MirrorError, parse_mirrors

    try:
        parse_mirrors(value)
    except MirrorError as exc:
        raise ValidationError(str(exc)) from None


_FINGERPRINT = RegexValidator(
    r"^[0-9A-Fa-f: ]{40,60}$", "an OpenPGP fingerprint: 40 hexadecimal digits (spaces allowed)"
)


class PrepareSettings(models.Model):
    """Where Prepare machine (workflows.prepare) gets a cluster's container runtime and kubeadm,
    kubelet, kubectl and crictl, and how it configures containerd."""

    class Source(models.TextChoices):
        PACKAGES = "packages", "Package repositories (pkgs.k8s.io, or a mirror of it)"
        ARTIFACTS = "artifacts", "Air-gapped: an artifact set Kubeboard holds"

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="prepare_settings")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.PACKAGES)
    repository_url = models.URLField(
        "package repository mirror",
        blank=True,
        max_length=300,
        help_text="Laid out like https://pkgs.k8s.io/core:/stable: (…/v1.37/deb/, …/v1.37/rpm/). Empty: pkgs.k8s.io.",
    )
    repository_key_fingerprint = models.CharField(
        "repository signing key fingerprint",
        max_length=60,
        default="DE15B14486CD377B9E876E1A234654DA9A296436",
        validators=[_FINGERPRINT],
        help_text="A downloaded key is used only if it has this fingerprint (pkgs.k8s.io's is the default).",
    )
    registry_mirrors = models.TextField(
        blank=True,
        validators=[validate_registry_mirrors],
        help_text="One registry=URL a line, e.g. registry.k8s.io=https://mirror.local:5000 (containerd's hosts.toml).",
    )
    replace_runtime = models.BooleanField(
        "replace an existing container runtime",
        default=False,
        help_text="Off: a containerd or CRI-O already on a machine is left as it is.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "machine preparation settings"

    def __str__(self) -> str:
        return f"{self.cluster.name} preparation settings"


class MachinePreparation(models.Model):
    """What the last Prepare found on and did to one machine; ``prepared_at`` is set only by a
    run whose every step succeeded and whose closing check passed (never a half-installed one)."""

    TEAM_PATH = "node__cluster__team"

    node = models.OneToOneField("nodes.Node", on_delete=models.CASCADE, related_name="preparation")
    facts = models.JSONField(default=dict, blank=True)
    kubernetes_version = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=16, blank=True)
    operation = models.ForeignKey("operations.Operation", null=True, blank=True, on_delete=models.SET_NULL)
    prepared_at = models.DateTimeField(null=True, blank=True)
    bytes_pushed = models.BigIntegerField(default=0)
    # The role whose images an air-gapped Prepare sent ("worker": no control-plane image; "" for
    # the package source, whose images come from the registry): a worker made a control plane
    # later is refused until it is prepared again.
    prepared_as = models.CharField(max_length=16, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.node} preparation"
