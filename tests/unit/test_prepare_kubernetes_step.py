"""Prepare's kubernetes step on the package source, against a recording stand-in for the machine
(workflows.prepare_steps.Machine's reads and runs): what it decides from what the machine says.
The real apt and dpkg run in tests/e2e/test_testbed_bare.py."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

from kubeadm import prepare as knowledge
from remote.commands import Output
from workflows import prepare_steps

FPR = "812E0CD480F32571715CEEEFE17B4391E79B7427"
MIRROR = "http://10.0.0.1:8080/kubernetes"
REPO = knowledge.Repository(knowledge.DEBIAN, "1.37", base=MIRROR, fingerprint=FPR)


class Machine:
    """A Debian machine with the mirror's key and source, the packages at v1.37.2 and held."""

    dry_run = False

    def __init__(self, ctx, kubelet: str) -> None:
        self.ctx, self.kubelet, self.ran = ctx, kubelet, []

    def path(self, absolute: str) -> str:
        return absolute

    def read(self, argv) -> Output:
        if argv[:2] == ["gpg", "--show-keys"]:
            return Output(0, [f"fpr:::::::::{FPR}:"])
        if argv[0] == "dpkg-query":
            return Output(
                0, [f"{name} {'1.37.0' if name == 'cri-tools' else '1.37.2'}-1.1 hi " for name in knowledge.PACKAGES]
            )
        if argv == ["apt-mark", "showhold"]:
            return Output(0, list(knowledge.PACKAGES))
        if argv == ["systemctl", "is-enabled", "kubelet"]:
            return Output(0 if self.kubelet == "enabled" else 1, [self.kubelet])
        raise AssertionError(f"unexpected read {argv}")

    def read_file(self, absolute: str) -> str | None:
        return REPO.source() if absolute == REPO.source_path else None

    def run(self, argv, **kw):
        self.ran.append(argv)
        return Output(0, [])


def _step(monkeypatch, kubelet: str):
    said: list[str] = []
    ctx = SimpleNamespace(
        cluster=SimpleNamespace(kubernetes_version="v1.37.2"),
        settings={"source": "packages", "repository": MIRROR, "repository-key": FPR},
        params={},
        node=SimpleNamespace(name="m1"),
        log=lambda message, **kw: said.append(message),
    )
    machine = Machine(ctx, kubelet)
    facts = knowledge.facts('ID=debian\nVERSION_ID="12"\n', "x86_64", "systemd")
    monkeypatch.setattr(prepare_steps, "facts_of", lambda ctx: facts)
    monkeypatch.setattr(prepare_steps, "phase_connection", lambda ctx: nullcontext())
    monkeypatch.setattr(prepare_steps, "machine_for", lambda ctx, conn: machine)
    monkeypatch.setattr(prepare_steps, "settings_for", lambda cluster: SimpleNamespace())
    prepare_steps.kubernetes(ctx)
    return said, machine.ran


def test_a_kubelet_the_package_left_disabled_is_enabled(monkeypatch):
    # A package need not enable its unit (the RHEL family's presets leave it disabled; the test
    # bed's Debian package has no scripts): kubeadm warns Service-Kubelet and a reboot loses it.
    said, ran = _step(monkeypatch, "disabled")
    assert said == ["Kubernetes v1.37.2: changed: enabled the kubelet (kubeadm starts it)"]
    assert ran == [["apt-mark", "hold", *knowledge.PACKAGES], ["systemctl", "enable", "kubelet"]]


def test_installed_held_and_enabled_is_already_done(monkeypatch):
    said, ran = _step(monkeypatch, "enabled")
    assert said == ["Kubernetes v1.37.2: already done, nothing changed."]
    assert ran == []
