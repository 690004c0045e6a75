"""The control-plane endpoint choice on the new-cluster form (issue 21; endpoints/ holds the rules).

A mixin, so the cluster form only lists it among its bases: its ``clean`` runs first (the form's
own ``clean`` calls ``super().clean()`` before checking the kubeadm configuration), so a virtual
IP's ``controlPlaneEndpoint`` (``VIP:port``) is known when kubeadm's rules are checked."""

from __future__ import annotations

from django import forms

from endpoints import layout

ENDPOINT_FIELDS = ("endpoint_mode", "endpoint_vip", "endpoint_interface", "endpoint_port", "endpoint_unicast")
_FIELD_OF = {
    "mode": "endpoint_mode",
    "vip": "endpoint_vip",
    "interface": "endpoint_interface",
    "port": "endpoint_port",
    "router_id": "endpoint_vip",
}


class EndpointChoiceForm(forms.Form):
    endpoint_mode = forms.ChoiceField(
        label="Control-plane endpoint",
        choices=[(mode, layout.MODE_LABELS[mode]) for mode in layout.MODES],
        initial=layout.EXTERNAL,
        required=False,
        help_text="External: the address below answers for every API server (a load balancer you run). "
        "Virtual IP: Kubeboard installs keepalived and haproxy on each control plane; the endpoint becomes "
        "VIP:port. Local proxy: Kubeboard installs haproxy on every node; kubelets and kube-proxy use "
        "127.0.0.1:port.",
    )
    endpoint_vip = forms.CharField(
        label="Virtual IP",
        required=False,
        max_length=45,
        help_text="A free address in the control planes' subnet (same L2 segment), e.g. 10.0.0.100.",
    )
    endpoint_interface = forms.CharField(
        label="Virtual IP interface",
        required=False,
        max_length=15,
        help_text="The control planes' interface on that subnet, e.g. eth0.",
    )
    endpoint_port = forms.IntegerField(
        label="Proxy port",
        required=False,
        initial=layout.DEFAULT_PORT,
        help_text=f"Where haproxy listens (the API servers keep {layout.API_SERVER_PORT}); "
        f"{layout.DEFAULT_PORT} as in kubeadm's HA guide.",
    )
    endpoint_unicast = forms.BooleanField(
        label="VRRP over unicast",
        required=False,
        help_text="Send keepalived's advertisements to the other control planes directly, for networks "
        "that drop multicast (the VIP still needs ARP on one L2 segment).",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A virtual IP's endpoint is VIP:port, filled in for the person.
        self.fields["control_plane_endpoint"].required = False
        names = list(self.fields)
        ours = [name for name in names if name in ENDPOINT_FIELDS]
        rest = [name for name in names if name not in ENDPOINT_FIELDS]
        at = rest.index("control_plane_endpoint")
        self.order_fields(rest[:at] + ours + rest[at:])

    def clean(self) -> dict:
        cleaned = super().clean()
        spec = layout.Spec(
            mode=cleaned.get("endpoint_mode") or layout.EXTERNAL,
            vip=(cleaned.get("endpoint_vip") or "").strip(),
            interface=(cleaned.get("endpoint_interface") or "").strip(),
            port=cleaned.get("endpoint_port") or layout.DEFAULT_PORT,
            router_id=layout.default_router_id(cleaned.get("name") or ""),
            unicast=bool(cleaned.get("endpoint_unicast")),
        )
        problems = layout.spec_problems(spec)
        if spec.mode == layout.VIP and not problems:
            subnets = {
                "pod subnet": cleaned.get("pod_subnet") or "",
                "service subnet": cleaned.get("service_subnet") or "",
            }
            problems = layout.vip_overlap_problems(spec.vip, subnets)
        for problem in problems:
            self.add_error(_FIELD_OF.get(problem.field, "endpoint_mode"), problem.message)
        typed = (cleaned.get("control_plane_endpoint") or "").strip()
        if spec.mode == layout.VIP:
            if not problems:
                derived = layout.control_plane_endpoint(spec)
                if typed and typed != derived:
                    self.add_error(
                        "control_plane_endpoint",
                        f"with a virtual IP the endpoint is {derived} (the VIP and the proxy port); "
                        "leave this empty or type exactly that",
                    )
                cleaned["control_plane_endpoint"] = derived
        elif not typed and "control_plane_endpoint" not in self.errors:
            which = (
                "the first control plane's address or a DNS name"
                if spec.mode == layout.LOCAL_PROXY
                else ("your load balancer's address")
            )
            self.add_error(
                "control_plane_endpoint",
                f"required: {which}, host or host:port (a virtual IP fills it in for you)",
            )
        self._set_endpoint(spec)
        return cleaned

    def _set_endpoint(self, spec: layout.Spec) -> None:
        """The choice onto the cluster row (a ModelForm saves only its Meta fields)."""
        installs = spec.installs_anything
        self.instance.endpoint_mode = spec.mode if spec.mode in layout.MODES else layout.EXTERNAL
        self.instance.endpoint_vip = spec.vip if spec.mode == layout.VIP else ""
        self.instance.endpoint_interface = spec.interface if spec.mode == layout.VIP else ""
        self.instance.endpoint_port = spec.port if installs and 1 <= spec.port <= 65535 else layout.DEFAULT_PORT
        self.instance.endpoint_router_id = spec.router_id if spec.mode == layout.VIP else 0
        self.instance.endpoint_unicast = spec.unicast and spec.mode == layout.VIP
