"""Pure-Python knowledge of kubeadm: configuration, PKI, tokens, discovery.

Kept tiny on purpose: importing ``kubeadm`` must not pull in ``cryptography``
or PyYAML; import the submodule you need (``kubeadm.config``, ``kubeadm.pki``...).
This package never imports Django and does no I/O except in functions that are
explicitly about files.
"""

CONFIG_API_VERSION = "kubeadm.k8s.io/v1beta4"
