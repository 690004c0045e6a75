"""A highly available control-plane endpoint (issue 21): pure knowledge, no Django, no I/O.

Three choices a cluster makes once, when it is created:

* ``external``: an address the user provides (a load balancer, or the first control plane's
  address as before); Kubeboard installs nothing.
* ``vip``: keepalived holds a virtual IP on one control plane at a time (VRRP) and haproxy on
  every control plane spreads connections over every API server (kubeadm's HA guide,
  ``ha-considerations.md``). ``controlPlaneEndpoint`` is ``VIP:port``.
* ``local-proxy``: haproxy on every node listens on ``127.0.0.1:port`` and spreads over every
  API server; the node's kubelet and kube-proxy use it (Kubespray's
  ``loadbalancer_apiserver_localhost``). ``controlPlaneEndpoint`` stays the address the user
  gave (join discovery and Kubeboard itself use it).

``endpoints.layout`` holds the choice, the port layout and the checks; ``endpoints.render`` the
configuration files; ``endpoints.status`` reads what machines answer about them.
"""
