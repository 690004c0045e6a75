"""Forms behind the cluster page's workflow actions: initialize and join (workflows/cluster_actions.py).

They choose among the cluster's machines, so they span nouns and live here, not in clusters/.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from clusters.models import Cluster
from core.form_fields import BoundedModelMultipleChoiceField
from kubeadm import workflow
from kubeadm.preflight import parse_check_list
from nodes.models import Node

# Kubeboard's own init phases a person may also skip (kubeadm's names come from kubeadm.workflow).
_SKIPPABLE_INIT = {"verify-api-server", "verify-cluster-info", "read-back"}


def candidate_machines(cluster: Cluster):
    """Machines of the cluster that are not part of it yet (nor being joined)."""
    return cluster.nodes.exclude(status__in=(Node.Status.JOINED, Node.Status.JOINING)).order_by("name")


class SkipField(forms.CharField):
    def __init__(self, *, allowed: set[str], **kwargs) -> None:
        super().__init__(required=False, **kwargs)
        self.allowed = allowed

    def clean(self, value):
        names = parse_check_list(super().clean(value))
        unknown = sorted(set(names) - self.allowed)
        if unknown:
            raise ValidationError(
                f"Not a phase of this operation: {', '.join(unknown)} (skippable: {', '.join(sorted(self.allowed))})."
            )
        return names


class InitForm(forms.Form):
    node = forms.ModelChoiceField(
        queryset=Node.objects.none(),
        label="First control-plane machine",
        empty_label=None,
        help_text="kubeadm init runs here; its /etc/kubernetes must be empty.",
    )
    skip = SkipField(
        allowed={p.name for p in workflow.INIT_PHASES} | _SKIPPABLE_INIT,
        label="Skip phases",
        help_text="Optional: phase names separated by commas (kubeadm's --skip-phases names), e.g. addon.",
    )

    def __init__(self, *args, cluster: Cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].queryset = candidate_machines(cluster)
        self.fields["node"].label_from_instance = lambda node: f"{node.name} ({node.address})"


class JoinForm(forms.Form):
    nodes = BoundedModelMultipleChoiceField(
        queryset=Node.objects.none(),
        label="Machines",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one machine to join."},
    )
    control_plane = forms.BooleanField(required=False, widget=forms.HiddenInput)
    method = forms.ChoiceField(
        choices=Cluster.ControlPlaneJoinMethod.choices,
        required=False,
        label="Shared certificates",
        help_text="How a new control plane gets the cluster's CA keys.",
    )
    parallelism = forms.IntegerField(
        min_value=1,
        max_value=50,
        required=False,
        label="Workers at once",
        help_text="How many workers join at the same time.",
    )

    def __init__(self, *args, cluster: Cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["nodes"].queryset = candidate_machines(cluster)
        self.fields["method"].initial = cluster.control_plane_join_method
        self.fields["parallelism"].initial = cluster.join_parallelism
