from kubeadm import workflow


def test_init_phase_order_matches_kubeadm_1_31_plus():
    assert [p.name for p in workflow.INIT_PHASES] == [
        "preflight", "certs", "kubeconfig", "etcd", "control-plane", "kubelet-start", "wait-control-plane",
        "upload-config", "upload-certs", "mark-control-plane", "bootstrap-token", "kubelet-finalize", "addon",
        "show-join-command",
    ]
    certs = workflow.find_phase(workflow.INIT_PHASES, "certs")
    assert [s.name for s in certs.sub_phases][:3] == ["ca", "apiserver", "apiserver-kubelet-client"]
    assert workflow.find_phase(workflow.INIT_PHASES, "certs/sa").command == ("kubeadm", "init", "phase", "certs", "sa")


def test_every_phase_is_complete_data():
    for phases in workflow.WORKFLOWS.values():
        for phase in phases:
            for p in (phase, *phase.sub_phases):
                assert p.name and p.description.endswith(".") and p.command[0] == "kubeadm"
                assert isinstance(p.needs_api_server, bool)


def test_join_and_reset_lists():
    assert [p.name for p in workflow.JOIN_WORKER_PHASES] == ["preflight", "kubelet-start"]
    assert all(p.needs_api_server for p in workflow.JOIN_CONTROL_PLANE_PHASES)
    assert [p.name for p in workflow.RESET_PHASES] == ["preflight", "remove-etcd-member", "cleanup-node"]
    assert workflow.phase_names(workflow.UPGRADE_PHASES)[:2] == ["preflight", "control-plane"]
