"""Pod network add-ons: pure knowledge, no Django (like kubeadm/).

Which upstream manifests Kubeboard ships (``addons.catalog``: name, version, file, SHA-256,
licence, where it came from), the documented substitutions applied to them, the checks a pod
subnet must pass for a choice, and the reading of a custom manifest (bounded, with the document
and line of a mistake) — ``addons.manifests``. Applying them through the API is kube/'s
(``kube.apply``); the operation that does it is workflows/network.py.
"""
