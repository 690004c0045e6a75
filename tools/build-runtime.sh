#!/usr/bin/env bash
# Build (or reuse) what a bare test-bed machine is prepared with besides Kubernetes itself:
# containerd v2 (+ shim, ctr), runc, crictl, CoreDNS and the pause binary. The artifact set
# (tools/testbed/artifacts.py) and the local APT repository are made from these.
#
# Usage: tools/build-runtime.sh
# Env:
#   KUBEBOARD_K8S_CACHE   cache root (default /var/cache/kubeboard/k8s); binaries land in
#                         $KUBEBOARD_K8S_CACHE/runtime/bin, complete when bin/.complete exists
# Prints the bin directory as the last line of stdout.
#
# Versions are the pinned Go modules tools/runtime/*/go.mod (one module per project, so
# Go's minimum version selection never lifts one project's dependencies for another's sake).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${KUBEBOARD_K8S_CACHE:-/var/cache/kubeboard/k8s}
bin="$cache_root/runtime/bin"
stamp="$bin/.complete"

containerd_version=v2.4.2
runc_version=v1.5.3
crictl_version=v1.37.0
coredns_version=v1.14.6
# The pause image tag kubeadm v1.37 names (`kubeadm config images list`); its C source comes
# from the k8s.io/kubernetes module that tools/k8s/v1.37 pins (build/pause/linux/pause.c).
pause_version=3.10.2
kubernetes_module=v1.37.2

components=(containerd containerd-shim-runc-v2 ctr runc crictl coredns pause)
want="containerd=$containerd_version runc=$runc_version crictl=$crictl_version coredns=$coredns_version pause=$pause_version"

log() { echo "[build-runtime $(date +%H:%M:%S)] $*" >&2; }

missing=()
for c in "${components[@]}"; do
  [ -x "$bin/$c" ] || missing+=("$c")
done
if [ -f "$stamp" ] && [ ${#missing[@]} -eq 0 ] && grep -qxF "versions=$want" "$stamp"; then
  log "reusing complete cache $bin"
  echo "$bin"
  exit 0
fi
if [ -f "$stamp" ] && ! grep -qxF "versions=$want" "$stamp"; then
  log "cache $bin holds other versions than pinned ($want): rebuilding"
  missing=("${components[@]}")
fi
rm -f "$stamp"

GO=${GO:-}
if [ -z "$GO" ]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go)
  elif [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
  else
    log "ERROR: 'go' not found (PATH or /usr/local/go/bin/go). Install Go >= 1.26 or set GO=/path/to/go."
    exit 2
  fi
fi
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
for tool in gcc; do
  command -v "$tool" >/dev/null || { log "ERROR: $tool not found: runc and pause are C-linked (apt-get install gcc libc6-dev)"; exit 2; }
done

mkdir -p "$bin"
log "building into $bin (missing: ${missing[*]}); $(nproc) cores"
total_start=$(date +%s)

# build NAME MODULE_DIR PACKAGE [go build args...]: writes to a temp name first, so an
# interrupted build is resumed, never trusted.
build() {
  local name=$1 dir=$2 pkg=$3
  shift 3
  local start
  start=$(date +%s)
  log "go build $name ..."
  if ! (cd "$here/runtime/$dir" && "$GO" mod download && "$GO" build -trimpath "$@" -o "$bin/.$name.tmp" "$pkg"); then
    rm -f "$bin/.$name.tmp"
    log "ERROR: building $name failed (output above). Fix it and rerun; finished binaries are kept."
    exit 1
  fi
  mv "$bin/.$name.tmp" "$bin/$name"
  log "$name done in $(( $(date +%s) - start ))s ($(du -h "$bin/$name" | cut -f1))"
}

wanted() { [[ " ${missing[*]} " == *" $1 "* ]]; }

# containerd: pure Go with the storage drivers that need cgo left out (no_btrfs,
# no_devmapper, no_zfs: the nodes use the overlayfs and native snapshotters), as its own
# Makefile builds a static binary. Version ldflags as containerd's Makefile sets them, so
# `containerd --version` and the CRI Version API report v2.4.2.
pkg=github.com/containerd/containerd/v2
cflags="-s -w -X $pkg/version.Version=$containerd_version -X $pkg/version.Package=$pkg -X $pkg/version.Revision=kubeboard-testbed"
ctags="no_btrfs no_devmapper no_zfs urfave_cli_no_docs osusergo netgo static_build"
for c in containerd ctr; do
  wanted "$c" && CGO_ENABLED=0 build "$c" containerd "$pkg/cmd/$c" -tags "$ctags" -ldflags "$cflags"
done
# The shim is built without gRPC like containerd's Makefile does (SHIM_GO_BUILDTAGS no_grpc).
wanted containerd-shim-runc-v2 &&
  CGO_ENABLED=0 build containerd-shim-runc-v2 containerd "$pkg/cmd/containerd-shim-runc-v2" -tags "$ctags no_grpc" -ldflags "$cflags"

# runc: its nsenter (runc init) is C, so cgo is required; linked statically like runc's
# `make static`. Without the `seccomp` tag (no libseccomp-dev on the host, and no container
# ever runs on the test bed: the hollow kubelet's runtime is fake) and without `libpathrs`
# (a Rust library); runc then refuses seccomp profiles with a clear error.
wanted runc && CGO_ENABLED=1 build runc runc github.com/opencontainers/runc \
  -tags "urfave_cli_no_docs netgo osusergo" \
  -ldflags "-s -w -X main.version=${runc_version#v} -X main.gitCommit=kubeboard-testbed -extldflags -static"

wanted crictl && CGO_ENABLED=0 build crictl cri-tools sigs.k8s.io/cri-tools/cmd/crictl \
  -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${crictl_version}"

wanted coredns && CGO_ENABLED=0 build coredns coredns github.com/coredns/coredns \
  -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=kubeboard-testbed"

# pause: kubernetes' build/pause/linux/pause.c, compiled static as its Makefile does.
if wanted pause; then
  src=$(cd "$here/k8s/v1.37" && "$GO" mod download -json k8s.io/kubernetes@$kubernetes_module | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/build/pause/linux/pause.c
  [ -f "$src" ] || { log "ERROR: $src not found (k8s.io/kubernetes $kubernetes_module module)"; exit 1; }
  gcc -Os -Wall -Werror -static -DVERSION="v$pause_version-kubeboard" -o "$bin/.pause.tmp" "$src"
  strip "$bin/.pause.tmp"
  mv "$bin/.pause.tmp" "$bin/pause"
  log "pause done ($(du -h "$bin/pause" | cut -f1))"
fi

"$bin/containerd" --version >&2
{
  echo "versions=$want"
  echo "go=$("$GO" env GOVERSION)"
  echo "built=$(date -u +%FT%TZ)"
  echo "seconds=$(( $(date +%s) - total_start ))"
} > "$stamp"
log "done in $(( $(date +%s) - total_start ))s, cache $(du -sh "$bin" | cut -f1)"
echo "$bin"
