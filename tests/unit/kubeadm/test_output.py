"""kubeadm's output lines become typed lines: level, the step that spoke, and the text."""

from kubeadm.output import ERROR, INFO, WARNING, parse_line


def test_bracket_prefix_names_the_step():
    line = parse_line('[certs] Generating "apiserver" certificate and key')
    assert (line.level, line.source, line.text) == (INFO, "certs", 'Generating "apiserver" certificate and key')
    assert (
        parse_line("[control-plane-check] Waiting for healthy control plane components.").source
        == "control-plane-check"
    )


def test_preflight_checks_are_warnings_or_errors_with_their_name():
    warning = parse_line("\t[WARNING Swap]: swap is supported for cgroup v2 only")
    assert (warning.level, warning.source, warning.check) == (WARNING, "preflight", "Swap")
    error = parse_line("\t[ERROR Port-6443]: Port 6443 is in use")
    assert (error.level, error.check, error.text) == (ERROR, "Port-6443", "Port 6443 is in use")


def test_klog_lines_carry_their_level_and_location():
    line = parse_line("W1127 07:00:00.123456   12345 checks.go:1080] detected a kubelet problem")
    assert (line.level, line.source, line.location, line.text) == (
        WARNING,
        "klog",
        "checks.go:1080",
        "detected a kubelet problem",
    )
    assert parse_line("E1127 07:00:00.123456 1 x.go:1] boom").level == ERROR


def test_phase_failure_is_an_error_of_that_phase():
    line = parse_line("error execution phase preflight: [preflight] Some fatal errors occurred:")
    assert (line.level, line.source) == (ERROR, "preflight")


def test_plain_text_stays_info():
    assert parse_line("Your Kubernetes control-plane has initialized successfully!").level == INFO


def test_etcd_client_json_lines_from_real_etcd_join():
    from pathlib import Path

    text = (Path(__file__).parent / "data/real-v1.37.2/outputs/join-cp-etcd-join.txt").read_text()
    json_lines = [parse_line(line) for line in text.splitlines() if line.startswith("{")]
    assert json_lines and all(p.level == WARNING and p.source == "etcd-client" for p in json_lines)
    assert json_lines[0].text.startswith("retrying of unary invoker failed: rpc error: code = DeadlineExceeded")
    assert json_lines[0].location == "v3@v3.7.0/retry_interceptor.go:68"
    assert parse_line("{not json}").level == INFO


def test_ansi_coloured_system_verification_lines_lose_their_escapes():
    line = parse_line("\x1b[0;37mKERNEL_VERSION\x1b[0m: \x1b[0;32m6.18.44\x1b[0m")
    assert (line.level, line.text) == (INFO, "KERNEL_VERSION: 6.18.44")
