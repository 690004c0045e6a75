"""Model-level rules for a cluster, worded exactly as the forms word them (kubeadm/ holds the rules)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from addons import manifests
from clusters.kubeadm_config import field_message
from kubeadm import preflight, validation


def validate_cluster_name(value: str) -> None:
    for error in validation.validate_cluster_name(value):
        raise ValidationError(field_message(error), code="invalid")


def validate_ignore_preflight_errors(value: object) -> None:
    """A preflight ignore list a person wrote: a cluster's, a machine's or the upgrade's."""
    problem = preflight.ignore_list_problem(value)
    if problem:
        raise ValidationError(problem, code="ignore_preflight")


def validate_image_registry(value: str) -> None:
    """A registry the pod network's images are pulled from instead of upstream's (air-gapped sites)."""
    problem = manifests.registry_problem(value)
    if problem:
        raise ValidationError(problem, code="registry")
