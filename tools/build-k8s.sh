#!/usr/bin/env bash
# Build (or reuse) the real Kubernetes binaries Kubeboard's test bed runs.
#
# Usage: tools/build-k8s.sh [VERSION]
#   VERSION defaults to $KUBEBOARD_K8S_VERSION, else the newest pinned release.
#   Pinned releases are the tools/k8s/v1.XX/ Go modules (see pin-release.sh).
# Env:
#   KUBEBOARD_K8S_CACHE   cache root (default /var/cache/kubeboard/k8s);
#                         binaries land in $KUBEBOARD_K8S_CACHE/<version>/bin
#   KUBEBOARD_K8S_EXTRA   extra components to build too (e.g. "kubemark etcdutl")
# Prints the bin directory as the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
default_version=v1.37.2
older_version=v1.36.3
version=${1:-${KUBEBOARD_K8S_VERSION:-$default_version}}
case "$version" in
  older|previous) version=$older_version ;;
esac
cache_root=${KUBEBOARD_K8S_CACHE:-/var/cache/kubeboard/k8s}
bin="$cache_root/$version/bin"
stamp="$bin/.complete"

components=(kubeadm kube-apiserver kube-controller-manager kube-scheduler kubectl etcd etcdctl)
# shellcheck disable=SC2206
extra=(${KUBEBOARD_K8S_EXTRA:-})

log() { echo "[build-k8s $(date +%H:%M:%S)] $*" >&2; }

minor=$(echo "$version" | cut -d. -f2)
moddir="$here/k8s/v1.${minor}"
if [ ! -f "$moddir/go.mod" ] || ! grep -q "k8s.io/kubernetes ${version}\b" "$moddir/go.mod"; then
  log "ERROR: no pinned Go module for ${version} (looked in ${moddir}/go.mod)."
  log "Pinned: $(ls -d "$here"/k8s/v1.* 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"
  log "To pin another release run: tools/k8s/pin-release.sh ${version}"
  exit 2
fi

missing=()
for c in "${components[@]}" "${extra[@]}"; do
  [ -x "$bin/$c" ] || missing+=("$c")
done
if [ -f "$stamp" ] && [ ${#missing[@]} -eq 0 ]; then
  log "reusing complete cache $bin"
  echo "$bin"
  exit 0
fi

GO=${GO:-}
if [ -z "$GO" ]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go)
  elif [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
  else
    log "ERROR: 'go' not found (PATH or /usr/local/go/bin/go)."
    log "Install Go >= $(awk '$1=="go"{print $2}' "$moddir/go.mod") (https://go.dev/dl) or set GO=/path/to/go, then rerun."
    exit 2
  fi
fi
# Never let go silently download another toolchain: say so instead.
# -mod=readonly: the pinned go.mod/go.sum are never rewritten by a build.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
need=$(awk '$1=="go"{print $2}' "$moddir/go.mod")
have=$("$GO" env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  log "ERROR: ${version} needs Go >= ${need}; $GO is ${have}. Install a newer Go or set GO=."
  exit 2
fi

mkdir -p "$bin"
# The stamp covers the core set only: building just an extra (kubemark) keeps
# a complete cache usable by tests running meanwhile.
core_missing=0
for c in "${components[@]}"; do
  [ -x "$bin/$c" ] || core_missing=1
done
[ $core_missing -eq 0 ] || rm -f "$stamp"
log "building ${version} into $bin (missing: ${missing[*]}); Go ${have}, $(nproc) cores"
log "a cold build takes a long time on 2 cores (see tools/README.md); progress follows"

# Version ldflags as kubernetes' hack/lib/version.sh sets them: kubeadm
# compares its own version with the control plane it deploys, and
# kube-apiserver reports it on /version.
build_date=2000-01-01T00:00:00Z
vflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  vflags+=" -X '${pkg}.gitVersion=${version}' -X '${pkg}.gitMajor=1' -X '${pkg}.gitMinor=${minor}'"
  vflags+=" -X '${pkg}.gitTreeState=clean' -X '${pkg}.buildDate=${build_date}'"
done
ldflags="-s -w${vflags}"

pkg_of() {
  case "$1" in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    etcdctl) echo go.etcd.io/etcd/etcdctl/v3 ;;
    etcdutl) echo go.etcd.io/etcd/etcdutl/v3 ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}

cd "$moddir"
log "downloading modules (Go module proxy)"
"$GO" mod download
total_start=$(date +%s)
i=0
for c in "${missing[@]}"; do
  i=$((i + 1))
  start=$(date +%s)
  log "[$i/${#missing[@]}] go build $c ..."
  if ! "$GO" build -trimpath -ldflags="$ldflags" -o "$bin/.$c.tmp" "$(pkg_of "$c")"; then
    rm -f "$bin/.$c.tmp"
    log "ERROR: building $c failed (output above). Fix it and rerun; finished binaries are kept."
    exit 1
  fi
  mv "$bin/.$c.tmp" "$bin/$c"
  log "[$i/${#missing[@]}] $c done in $(( $(date +%s) - start ))s ($(du -h "$bin/$c" | cut -f1))"
done
"$bin/kubeadm" version -o short >/dev/null
if [ $core_missing -eq 0 ] && [ -f "$stamp" ]; then
  log "done: built ${missing[*]}"
  echo "$bin"
  exit 0
fi
{
  echo "version=${version}"
  echo "go=${have}"
  echo "built=$(date -u +%FT%TZ)"
  echo "seconds=$(( $(date +%s) - total_start ))"
} > "$stamp"
log "done: ${version} in $(( $(date +%s) - total_start ))s, cache $(du -sh "$bin" | cut -f1)"
echo "$bin"
