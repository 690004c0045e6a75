from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from addons import catalog as addons_catalog
from clusters.validators import validate_cluster_name, validate_ignore_preflight_errors, validate_image_registry
from core.encryption import EncryptedTextField
from endpoints import layout as endpoint_layout
from kubeadm import config as kubeadm_config

if TYPE_CHECKING:
    from kube.client import Credentials

# The operation kind that initializes a cluster (workflows/init.py registers it). Its name lives
# here because the cluster page shows a cluster's latest init and clusters/ cannot import workflows/.
INIT_KIND = "init"


class Cluster(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        PREPARING = "preparing", "Preparing identity"
        READY = "ready", "Identity ready"
        FAILED = "failed", "Failed"
        INITIALIZING = "initializing", "Initializing"
        INIT_STOPPED = "init-stopped", "Initialization stopped"
        RUNNING = "initialized", "Running"

    class ControlPlaneJoinMethod(models.TextChoices):
        # Cluster API's way: the shared CA and service-account keys go to the new node over SFTP
        # from Kubeboard's custody; nothing secret is stored in the cluster, no two-hour race.
        PRE_SEED = "pre-seed", "Pre-seed the shared certificates over SFTP"
        # kubeadm's way: the kubeadm-certs Secret, encrypted with a certificate key valid two hours.
        UPLOAD_CERTS = "upload-certs", "kubeadm upload-certs with a certificate key"

    class Origin(models.TextChoices):
        CREATED = "created", "Created by Kubeboard"
        ADOPTED = "adopted", "Adopted (admin kubeconfig)"

    class EncryptionAlgorithm(models.TextChoices):
        RSA_2048 = "RSA-2048", "RSA-2048 (kubeadm's default)"
        RSA_3072 = "RSA-3072", "RSA-3072"
        RSA_4096 = "RSA-4096", "RSA-4096"
        ECDSA_P256 = "ECDSA-P256", "ECDSA-P256"
        ECDSA_P384 = "ECDSA-P384", "ECDSA-P384"

    name = models.CharField(max_length=63, unique=True, validators=[validate_cluster_name])
    kubernetes_version = models.CharField("Kubernetes version", max_length=32)
    control_plane_endpoint = models.CharField("control-plane endpoint", max_length=255)
    pod_subnet = models.CharField(max_length=200, blank=True)
    service_subnet = models.CharField(max_length=200, default=kubeadm_config.DEFAULT_SERVICE_SUBNET)
    dns_domain = models.CharField("DNS domain", max_length=253, default=kubeadm_config.DEFAULT_DNS_DOMAIN)
    image_repository = models.CharField(max_length=255, default=kubeadm_config.DEFAULT_IMAGE_REPOSITORY)
    encryption_algorithm = models.CharField(
        "key algorithm", max_length=16, choices=EncryptionAlgorithm.choices, default=EncryptionAlgorithm.RSA_2048
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="clusters")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Derived identity, filled by the "prepare identity" operation.
    ca_pin_hash = models.CharField(max_length=80, blank=True)
    kubeadm_config = models.TextField(blank=True)
    # A cluster Kubeboard did not create is reached through the admin kubeconfig it was adopted
    # with (encrypted); a created one through short-lived certificates from the CA Kubeboard holds.
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.CREATED)
    admin_kubeconfig = EncryptedTextField(blank=True)

    # How Kubeboard drives kubeadm on this cluster's machines (init and joins).
    ignore_preflight_errors = models.JSONField(
        "preflight checks to ignore",
        default=list,
        blank=True,
        validators=[validate_ignore_preflight_errors],
        help_text="kubeadm --ignore-preflight-errors for every machine of this cluster (each machine may add its own).",
    )
    join_parallelism = models.PositiveSmallIntegerField(
        "worker joins at once",
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="How many workers join at the same time; control planes always join one at a time.",
    )
    control_plane_join_method = models.CharField(
        "control-plane join method",
        max_length=16,
        choices=ControlPlaneJoinMethod.choices,
        default=ControlPlaneJoinMethod.PRE_SEED,
    )

    # The pod network add-on (issue 20): what init's pod-network phase and the pod-network
    # operation apply. "" = never chosen (clusters from before the choice existed).
    pod_network = models.CharField(
        max_length=16,
        blank=True,
        choices=[(name, addons_catalog.NETWORK_LABELS[name]) for name in addons_catalog.NETWORKS],
    )
    pod_network_version = models.CharField("pod network version", max_length=32, blank=True)
    pod_network_registry = models.CharField(
        "pod network image registry", max_length=255, blank=True, validators=[validate_image_registry]
    )
    # What the last successful apply rolled out ("flannel v0.28.9"), so the next step can tell a
    # choice not applied yet (or changed since) from one that is.
    pod_network_applied = models.CharField(max_length=64, blank=True)
    # The objects Kubeboard applied for the pod network ({apiVersion, kind, namespace, name} each),
    # written before an apply (old and new together) and after it (the new ones): an object the
    # next apply's manifest no longer has is pruned only if it is listed here.
    pod_network_inventory = models.JSONField(default=list, blank=True)

    # The control-plane endpoint (issue 21): how kubelets, kube-proxy and users reach the API
    # servers when a control plane is down. "external" is the address typed above, as before.
    endpoint_mode = models.CharField(
        "control-plane endpoint kind",
        max_length=16,
        choices=[(mode, endpoint_layout.MODE_LABELS[mode]) for mode in endpoint_layout.MODES],
        default=endpoint_layout.EXTERNAL,
    )
    endpoint_vip = models.CharField("virtual IP", max_length=45, blank=True)
    endpoint_interface = models.CharField("virtual IP interface", max_length=15, blank=True)
    endpoint_port = models.PositiveIntegerField(
        "proxy port",
        default=endpoint_layout.DEFAULT_PORT,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
    )
    endpoint_router_id = models.PositiveSmallIntegerField("VRRP virtual router id", default=0)
    endpoint_unicast = models.BooleanField("VRRP over unicast", default=False)

    # core.permissions: the path from a cluster to the team that owns it.
    TEAM_PATH = "team"

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("clusters:detail", args=[self.name])

    @property
    def is_adopted(self) -> bool:
        return self.origin == self.Origin.ADOPTED

    @property
    def pod_network_wanted(self) -> str:
        """The chosen pinned add-on as ``pod_network_applied`` records it; "" when nothing is to apply."""
        if self.pod_network not in (addons_catalog.FLANNEL, addons_catalog.CALICO, addons_catalog.CUSTOM):
            return ""
        return f"{self.pod_network} {self.pod_network_version}"

    @property
    def pod_network_label(self) -> str:
        """The choice in words: "Flannel v0.28.9", "None", "Not chosen"."""
        if not self.pod_network:
            return "Not chosen"
        label = addons_catalog.NETWORK_LABELS[self.pod_network]
        return f"{label} {self.pod_network_version}" if self.pod_network_version else label

    @property
    def endpoint_spec(self) -> endpoint_layout.Spec:
        return endpoint_layout.Spec(
            mode=self.endpoint_mode,
            vip=self.endpoint_vip,
            interface=self.endpoint_interface,
            port=self.endpoint_port,
            router_id=self.endpoint_router_id,
            unicast=self.endpoint_unicast,
        )

    @property
    def endpoint_label(self) -> str:
        """The endpoint choice in words: "Virtual IP 10.0.0.100 on eth0 (haproxy :8443, VRRP router id 51)"."""
        spec = self.endpoint_spec
        if spec.mode == endpoint_layout.VIP:
            unicast = ", unicast" if spec.unicast else ""
            return (
                f"Virtual IP {spec.vip} on {spec.interface} (haproxy :{spec.port}, "
                f"VRRP router id {spec.router_id}{unicast})"
            )
        if spec.mode == endpoint_layout.LOCAL_PROXY:
            return f"Local proxy on every node ({endpoint_layout.local_proxy_url(spec)})"
        return "External load balancer or address"

    def api_credentials(self, *, user=None) -> Credentials:
        """Fresh credentials for this cluster's API server; what makes a Cluster a ``kube.APITarget``."""
        # Imported here: apiaccess pulls in the Kubernetes client, which loading the models need not.
        from clusters.apiaccess import credentials

        return credentials(self, user=user)


class PodNetworkManifest(models.Model):
    """A cluster's custom pod network manifest (issue 20): the text as uploaded or downloaded,
    already checked (its SHA-256, bounded safe YAML, Kubernetes objects), kept so that every apply,
    resume and re-apply uses exactly these bytes, whether or not its URL still answers."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="pod_network_manifest")
    text = models.TextField()
    sha256 = models.CharField("SHA-256", max_length=64)
    source = models.CharField(
        max_length=2048, help_text="The https URL it was downloaded from, or the uploaded file's name."
    )
    object_count = models.PositiveIntegerField("objects", default=0)
    saved_at = models.DateTimeField(auto_now=True)
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.cluster.name}: {self.source} (sha256 {self.sha256[:16]})"


class CertificateAuthority(models.Model):
    """A key pair the cluster trusts, held by Kubeboard (CAPI-style custody).

    ``name`` is kubeadm's base name ("ca", "front-proxy-ca", "etcd/ca", "sa"); the service
    account signing key has no certificate.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="authorities")
    name = models.CharField(max_length=32)
    certificate_pem = models.TextField(blank=True)
    public_key_pem = models.TextField()
    private_key = EncryptedTextField()
    subject = models.CharField(max_length=255, blank=True)
    fingerprint_sha256 = models.CharField(max_length=100, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="unique_authority_per_cluster")]
        verbose_name_plural = "certificate authorities"

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"

    @property
    def slug(self) -> str:
        """The name as one URL/file-name segment: "etcd/ca" -> "etcd-ca"."""
        return self.name.replace("/", "-")


class ClusterInventory(models.Model):
    """What the cluster's API server said at the last read-back (after init, a join, or on request)."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="inventory")
    collected_at = models.DateTimeField(null=True, blank=True)
    # [{"name", "ready", "roles", "kubelet_version", "internal_ip", "created"}]
    api_nodes = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # The live Node status (clusters.nodestatus): the Nodes read again while a cluster page is
    # open, at most once per NODE_STATUS_REFRESH_SECONDS, kept apart from the read-back above
    # so "Read back 3 min ago" stays true. The summary shows whichever of the two is newer.
    refreshed_nodes = models.JSONField(default=list, blank=True)  # node_row()s, like api_nodes
    refreshed_at = models.DateTimeField(null=True, blank=True)  # when that successful read started
    refresh_changed_at = models.DateTimeField(null=True, blank=True)  # when refreshed_nodes last differed
    refresh_error = models.TextField(blank=True)  # the last refresh's failure; empty after a success
    # The claim: set by the one process whose conditional UPDATE wins (refreshes are spaced from
    # refresh_claimed_at; the lease stops a second one while one runs or waits in the queue).
    refresh_claimed_at = models.DateTimeField(null=True, blank=True)
    refresh_lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "cluster inventories"

    def __str__(self) -> str:
        return f"{self.cluster.name} inventory"


class MachineInventory(models.Model):
    """What kubeadm's phases left on one control-plane machine, read back from it over SSH:
    certificates with expiry (compared with Kubeboard's custody) and the static Pod manifests."""

    node = models.OneToOneField("nodes.Node", on_delete=models.CASCADE, related_name="inventory")
    collected_at = models.DateTimeField(null=True, blank=True)
    # Rows of kubeadm.readback.certificate_row (its docstring lists the keys).
    certificates = models.JSONField(default=list, blank=True)
    # [{"name", "path", "sha256", "images", "text"}] (manifests reference files; they hold no secrets)
    manifests = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    TEAM_PATH = "node__cluster__team"

    class Meta:
        verbose_name_plural = "machine inventories"

    def __str__(self) -> str:
        return f"{self.node} inventory"
