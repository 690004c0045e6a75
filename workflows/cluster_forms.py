"""Forms behind the cluster page's workflow actions: initialize and join (workflows/cluster_actions.py).

They choose among the cluster's machines, so they span nouns and live here, not in clusters/.
"""

from __future__ import annotations

from django import forms

from clusters.models import Cluster
from core.form_fields import BoundedModelMultipleChoiceField
from nodes.models import Node
from workflows import join
from workflows.init import KUBEADM_PHASES as INIT_KUBEADM_PHASES


def candidate_machines(cluster: Cluster, role: str | None = None):
    """Machines of the cluster that are not part of it yet (nor being joined), of ``role`` if given."""
    machines = cluster.nodes.exclude(status__in=(Node.Status.JOINED, Node.Status.JOINING))
    if role is not None:
        machines = machines.filter(role=role)
    return machines.order_by("name")


def skip_field(names: tuple[str, ...]) -> forms.MultipleChoiceField:
    """The kubeadm phases a person may skip (``names``: the operation kind's), by kubeadm's own names."""
    return forms.MultipleChoiceField(
        choices=[(name, name) for name in names],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Skip kubeadm phases",
        help_text="Optional: kubeadm's phases not to run (the names kubeadm's --skip-phases takes).",
    )


class InitForm(forms.Form):
    node = forms.ModelChoiceField(
        queryset=Node.objects.none(),
        label="First control-plane machine",
        empty_label=None,
        help_text="kubeadm init runs here; its /etc/kubernetes must be empty. Machines registered as control planes.",
    )

    def __init__(self, *args, cluster: Cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].queryset = candidate_machines(cluster, Node.Role.CONTROL_PLANE)
        self.fields["node"].label_from_instance = lambda node: f"{node.name} ({node.address})"
        # Kubeboard runs kubeadm init's phases but show-join-command (it makes its own tokens).
        self.fields["skip"] = skip_field(INIT_KUBEADM_PHASES)


class JoinForm(forms.Form):
    """Join workers or control planes: each lists the cluster's machines of that role that are
    not part of it yet. How many workers join at once is the cluster's setting "Worker joins at
    once" (How Kubeboard drives kubeadm here), not a field here."""

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

    def __init__(self, *args, cluster: Cluster, control_plane: bool | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if control_plane is None:
            control_plane = self.fields["control_plane"].to_python(self.data.get("control_plane"))
        self.control_plane = bool(control_plane)
        role = Node.Role.CONTROL_PLANE if self.control_plane else Node.Role.WORKER
        self.fields["nodes"].queryset = candidate_machines(cluster, role)
        self.fields["method"].initial = cluster.control_plane_join_method
        self.fields["skip"] = skip_field(
            join.CONTROL_PLANE_KUBEADM_PHASES if self.control_plane else join.WORKER_KUBEADM_PHASES
        )
