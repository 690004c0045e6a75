"""The pinned upstream manifests Kubeboard ships, each byte for byte as released.

Files live under ``addons/manifests/<name>/<version>/`` with the project's licence. The SHA-256
here is checked every time a manifest is read, so an edited file is refused rather than applied.
To add a version: copy the released manifest and its licence there, add a ``Pinned`` row with
``sha256sum`` of the file, and run tests/unit/test_addons.py (it checks every row against its
file). README.md, "Pod network", says the same for operators.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"

FLANNEL = "flannel"
CALICO = "calico"
CUSTOM = "custom"
NONE = "none"
# What a cluster's pod network may be; "" on a cluster means "not chosen" (before issue 20).
NETWORKS = (FLANNEL, CALICO, CUSTOM, NONE)
NETWORK_LABELS = {FLANNEL: "Flannel", CALICO: "Calico", CUSTOM: "Custom manifest", NONE: "None"}


class CatalogError(Exception):
    """A pinned manifest is unknown or its file does not match the recorded checksum."""


@dataclass(frozen=True)
class Pinned:
    name: str
    version: str
    file: str  # under MANIFEST_DIR
    sha256: str
    licence: str  # under MANIFEST_DIR
    source: str  # the upstream file at its release tag (and the tag's commit)

    @property
    def path(self) -> Path:
        return MANIFEST_DIR / self.file

    @property
    def label(self) -> str:
        return f"{NETWORK_LABELS[self.name]} {self.version}"

    def text(self) -> str:
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise CatalogError(
                f"{self.file} has SHA-256 {digest}, the catalog pins {self.sha256}: the shipped "
                "manifest was changed; restore it from the release it names"
            )
        return data.decode("utf-8")


PINNED: tuple[Pinned, ...] = (
    Pinned(
        FLANNEL,
        "v0.28.8",
        "flannel/v0.28.8/kube-flannel.yml",
        "d5ec6500c8050667ef5e6c4dc59b750075db8cf32f45b12961349208c5f326da",
        "flannel/v0.28.8/LICENSE",
        "https://github.com/flannel-io/flannel/blob/v0.28.8/Documentation/kube-flannel.yml "
        "(commit 653531a376e6148a58aedc43a78e4cdc8020f8bd)",
    ),
    Pinned(
        FLANNEL,
        "v0.28.9",
        "flannel/v0.28.9/kube-flannel.yml",
        "e875824be2f552b45711dbda91af81b17eb961d00025d914d9fef18fad8f09c0",
        "flannel/v0.28.9/LICENSE",
        "https://github.com/flannel-io/flannel/blob/v0.28.9/Documentation/kube-flannel.yml "
        "(commit 5cd0d52648e891d73a6dcb9bb2c67d7c365cf7aa)",
    ),
    Pinned(
        CALICO,
        "v3.32.1",
        "calico/v3.32.1/calico.yaml",
        "a1df919d9721cf667accdc3e72848911b0cb25cfab7d2478ad0c996302c95744",
        "calico/v3.32.1/LICENSE.md",
        "https://github.com/projectcalico/calico/blob/v3.32.1/manifests/calico.yaml "
        "(commit 0ca9d1b93644778cafdf1812f3dda02ac0c361e8)",
    ),
)


def versions(name: str) -> list[str]:
    """The pinned versions of ``name``, oldest first (the catalog lists them so)."""
    return [p.version for p in PINNED if p.name == name]


def newest(name: str) -> Pinned:
    found = [p for p in PINNED if p.name == name]
    if not found:
        raise CatalogError(f"no pinned manifest for {name!r}; pinned: {', '.join(sorted({p.name for p in PINNED}))}")
    return found[-1]


def pinned(name: str, version: str = "") -> Pinned:
    """The pinned manifest ``name`` at ``version`` (the newest when empty)."""
    if not version:
        return newest(name)
    for p in PINNED:
        if p.name == name and p.version == version:
            return p
    known = ", ".join(versions(name)) or "none"
    raise CatalogError(f"{NETWORK_LABELS.get(name, name)} {version} is not pinned (pinned: {known})")
