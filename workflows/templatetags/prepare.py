"""``{% prepare_machine node %}`` (the machine page) and ``{% prepare_machines cluster %}`` (the
cluster page): what the last Prepare found and the form that starts one (workflows.prepare).

Tags rather than the views' context because nodes/ and clusters/ sit below workflows/ (the layer
rule). Who may press the buttons is the page's ``can_operate`` and, again, the POST's own check.
"""

from __future__ import annotations

from django import template

from artifacts.models import ArtifactSet
from nodes.models import Node
from workflows import prepare
from workflows.models import MachinePreparation
from workflows.prepare_forms import PrepareSettingsForm

register = template.Library()


@register.inclusion_tag("daytwo/_prepare_machine.html", takes_context=True)
def prepare_machine(context: template.Context, node: Node) -> dict:
    return {
        "node": node,
        "preparation": MachinePreparation.objects.filter(node=node).select_related("operation").first(),
        "preparable": node.status in prepare.PREPARABLE,
        "can_operate": context.get("can_operate"),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("daytwo/_prepare_machines.html", takes_context=True)
def prepare_machines(context: template.Context, cluster) -> dict:
    chosen = prepare.settings_for(cluster)
    preparations = {p.node_id: p for p in MachinePreparation.objects.filter(node__cluster=cluster)}
    machines = [(node, preparations.get(node.pk)) for node in prepare.preparable(cluster)]
    return {
        "cluster": cluster,
        "settings": chosen,
        "machines": machines,
        "sets": ArtifactSet.objects.filter(kubernetes_version=cluster.kubernetes_version),
        "settings_form": PrepareSettingsForm(instance=chosen) if context.get("can_operate") else None,
        "can_operate": context.get("can_operate"),
        "csrf_token": context.get("csrf_token"),
    }
