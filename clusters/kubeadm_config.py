"""The bridge from a Cluster row to kubeadm's configuration objects (kubeadm/ holds the rules)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ObjectDoesNotExist

from endpoints import layout as endpoint_layout
from kubeadm import config as kubeadm_config
from kubeadm.errors import ConfigError
from kubeadm.validation import validate_cluster_configuration

# kubeadm's field path -> our form/model field, so kubeadm's messages land on the right input.
FIELD_FOR_CONFIG_PATH = {
    "clusterName": "name",
    "kubernetesVersion": "kubernetes_version",
    "controlPlaneEndpoint": "control_plane_endpoint",
    "networking.podSubnet": "pod_subnet",
    "networking.serviceSubnet": "service_subnet",
    "networking.dnsDomain": "dns_domain",
    "imageRepository": "image_repository",
    "encryptionAlgorithm": "encryption_algorithm",
}


def cluster_configuration(
    values: Mapping[str, Any], base: kubeadm_config.ClusterConfiguration | None = None
) -> kubeadm_config.ClusterConfiguration:
    """kubeadm's defaults (or ``base``: an imported file, day-two changes), overridden by what the
    user chose (keys are our model field names)."""
    config = copy.deepcopy(base) if base is not None else kubeadm_config.default_cluster_configuration()
    config.cluster_name = values["name"]
    config.kubernetes_version = values["kubernetes_version"]
    config.control_plane_endpoint = values["control_plane_endpoint"]
    config.networking.pod_subnet = values.get("pod_subnet") or ""
    config.networking.service_subnet = values.get("service_subnet") or kubeadm_config.DEFAULT_SERVICE_SUBNET
    config.networking.dns_domain = values.get("dns_domain") or kubeadm_config.DEFAULT_DNS_DOMAIN
    config.image_repository = values.get("image_repository") or kubeadm_config.DEFAULT_IMAGE_REPOSITORY
    config.encryption_algorithm = values.get("encryption_algorithm") or kubeadm_config.DEFAULT_ENCRYPTION_ALGORITHM
    return config


def cluster_values(cluster) -> dict[str, Any]:
    return {field: getattr(cluster, field) for field in FIELD_FOR_CONFIG_PATH.values()}


def stored_base(cluster) -> kubeadm_config.ClusterConfiguration | None:
    """The cluster's stored ClusterConfiguration (workflows.models.StoredConfiguration: an imported
    kubeadm file, an added API server SAN), or None when it has none."""
    try:
        stored = cluster.stored_configuration
    except ObjectDoesNotExist:
        return None
    return kubeadm_config.parse_config(stored.text).cluster if stored.text else None


def configuration_for(cluster) -> kubeadm_config.ClusterConfiguration:
    """The ClusterConfiguration Kubeboard gives kubeadm for ``cluster``: its stored base with the
    cluster's own fields laid over it."""
    config = cluster_configuration(cluster_values(cluster), stored_base(cluster))
    # A local proxy passes TLS through from 127.0.0.1: the API server's certificate must name it
    # (kubeadm adds controlPlaneEndpoint's host itself, so a virtual IP needs nothing here).
    wanted = endpoint_layout.cert_sans(cluster.endpoint_spec)
    missing = [san for san in wanted if san not in (config.api_server.cert_sans or [])]
    if missing:
        config.api_server.cert_sans = [*(config.api_server.cert_sans or []), *missing]
    return config


def configuration_errors(values: Mapping[str, Any]) -> list[ConfigError]:
    return validate_cluster_configuration(cluster_configuration(values))


def field_message(error: ConfigError) -> str:
    """kubeadm's message for a form field: the field itself says where, so without the config path."""
    return str(error).removeprefix(f"{error.field}: ")


def init_configuration() -> kubeadm_config.InitConfiguration:
    """Node-specific fields are left for kubeadm to fill on the node (or for the join step)."""
    init = kubeadm_config.default_init_configuration()
    # Never hand a node kubeadm's published placeholder token; Kubeboard issues real ones.
    init.bootstrap_tokens = []
    init.local_api_endpoint.advertise_address = ""
    init.node_registration.name = ""
    return init


def render(cluster) -> str:
    return kubeadm_config.render_init_config(init_configuration(), configuration_for(cluster))
