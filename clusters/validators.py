"""Model-level rules for a cluster, worded exactly as the forms word them (kubeadm/ holds the rules)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from clusters.kubeadm_config import field_message
from kubeadm import validation


def validate_cluster_name(value: str) -> None:
    for error in validation.validate_cluster_name(value):
        raise ValidationError(field_message(error), code="invalid")
