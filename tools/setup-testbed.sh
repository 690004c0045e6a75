#!/usr/bin/env bash
# One entry point for everything the test-bed tests need on a fresh machine.
# Idempotent: reruns are quick (packages present, binaries reused from cache).
#
#   bash tools/setup-testbed.sh            # as root
#
# Env: KUBEBOARD_K8S_CACHE (binary cache root), KUBEBOARD_K8S_VERSION,
#      KUBEBOARD_TESTBED_OLDER=1 to also build the older pinned release,
#      KUBEBOARD_TESTBED_KUBEMARK=0 to skip the hollow-kubelet build,
#      KUBEBOARD_TESTBED_RUNTIME=0 to skip the bare machines' runtime build (build-runtime.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "[setup-testbed $(date +%H:%M:%S)] $*"; }

if [ "$(id -u)" != 0 ]; then
  log "ERROR: run as root (namespaces, bridges, mounts and apt-get need it)."
  exit 2
fi

# Debian packages: sshd for the nodes, iproute2 for netns/bridges/veths,
# util-linux for unshare/nsenter/mount, procps for ps, openssh-client for ssh,
# curl for health checks inside nodes. Bare machines (issue 19): gcc and libc6-dev link runc
# and pause statically (tools/build-runtime.sh), gpg signs the local APT repository.
pkgs=(openssh-server openssh-client iproute2 util-linux mount procps curl ca-certificates gcc libc6-dev gpg)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # apt never starts services here (no systemd); sshd is started per node by the test bed.
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    log "apt-get install failed; refreshing package lists once and retrying"
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
else
  log "Debian packages present: ${pkgs[*]}"
fi

# A highly available control-plane endpoint (issue 21): keepalived and haproxy, Debian's packages,
# run as services inside nodes with a private root (their lower layer is this host's /, so the
# nodes find them installed). They must never run on the host itself: while apt installs them a
# policy-rc.d refuses every service start (invoke-rc.d, deb-systemd-invoke), and on a host booted
# with systemd they are disabled and stopped right after, so no boot starts them either.
ha_pkgs=(keepalived haproxy)
ha_missing=()
for p in "${ha_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || ha_missing+=("$p")
done
if [ ${#ha_missing[@]} -gt 0 ]; then
  log "installing Debian packages (never started on this host): ${ha_missing[*]}"
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# setup-testbed.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT  # also when apt-get fails
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${ha_missing[@]}"; then
    log "apt-get install failed; refreshing package lists once and retrying"
    apt-get update
    apt-get install -y --no-install-recommends "${ha_missing[@]}"
  fi
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  if [ -d /run/systemd/system ]; then
    systemctl disable --now keepalived.service haproxy.service >/dev/null 2>&1 || true
  fi
  # Whatever started them anyway (an init script no policy covered): stop the ones this install
  # started on the host, never a sandbox node's (those live in other network namespaces).
  host_net=$(stat -L -c %i /proc/self/ns/net)
  for pid in $(pgrep -x keepalived || true) $(pgrep -x haproxy || true); do
    if [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$host_net" ]; then
      log "stopping $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) that its package started on the host"
      kill "$pid" 2>/dev/null || true
    fi
  done
else
  log "Debian packages present (not run on this host): ${ha_pkgs[*]}"
fi

# The runner imports yaml in whatever interpreter runs the tests (the project's
# requirements pin PyYAML); only warn, since that may be a venv not active here.
python3 -c 'import yaml' 2>/dev/null ||
  log "WARNING: $(command -v python3) lacks PyYAML; the interpreter running the tests needs it (pip install PyYAML)"

# Binaries: built once per version into the cache, reused afterwards.
# etcdutl (snapshot status/restore: etcdctl >= 3.6 only saves snapshots) builds in seconds.
# kube-proxy only becomes an image of the bare machines' artifact sets (tools/testbed/artifacts.py):
# the older release's too, since the day-two upgrade test prepares its machines from that set.
extra="etcdutl kube-proxy"
[ "${KUBEBOARD_TESTBED_KUBEMARK:-1}" = 1 ] && extra="kubemark etcdutl kube-proxy"
KUBEBOARD_K8S_EXTRA=$extra "$here/build-k8s.sh" >/dev/null
# What bare machines are prepared with: containerd, runc, crictl, CoreDNS, pause
# (KUBEBOARD_TESTBED_RUNTIME=0 skips it; the bare-machine tests then skip).
if [ "${KUBEBOARD_TESTBED_RUNTIME:-1}" = 1 ]; then
  "$here/build-runtime.sh" >/dev/null
fi
if [ "${KUBEBOARD_TESTBED_OLDER:-0}" = 1 ]; then
  KUBEBOARD_K8S_EXTRA=$extra "$here/build-k8s.sh" older >/dev/null
fi

# A crashed earlier run may have left sandboxes: report and remove them (never one whose
# creating process still runs: that is another test run in progress on this machine).
cd "$here/.."
for name in $(python3 -c 'from tools.testbed.sandbox import abandoned_sandboxes; print(" ".join(abandoned_sandboxes()))'); do
  case "$name" in
    kbtb?*) log "removing leftover test sandbox $name"; python3 -m tools.testbed down --name "$name" || true ;;
  esac
done
log "test bed ready"
