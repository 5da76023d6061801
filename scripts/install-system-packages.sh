#!/usr/bin/env bash
# Installs the Debian packages MasterTrade's set-up and tests need, when they are missing:
# npm (helm/kubectl come from an npm package), PostgreSQL, RabbitMQ, Redis (the services' real
# infrastructure), prometheus (promtool checks the rendered Prometheus config), shellcheck, and
# etcd + jq (the real Kubernetes control plane of the k8s test tier, ../shared/k8s, needs them),
# chromium (the monitoring UI's browser tests), and for the node tier's real node and its images:
# containerd, the CNI plugins, iptables, podman and debootstrap, with podman configured for these
# sandboxes (docs/real-node.md).
set -euo pipefail

# podman here: no CAP_SYS_RESOURCE to raise rlimits, and hybrid cgroups that crun refuses
# (../shared/k8s/README.md). Written only when the machine has no configuration of its own.
configure_podman() {
  [ -f /etc/containers/containers.conf ] && return 0
  [ "$(id -u)" -eq 0 ] || return 0
  mkdir -p /etc/containers
  cat >/etc/containers/containers.conf <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
}

missing=()
command -v npm >/dev/null || missing+=(npm)
command -v psql >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v promtool >/dev/null || missing+=(prometheus)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v jq >/dev/null || missing+=(jq)
# the browser tier drives Debian's Chromium (Playwright's own browser download is not used)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The node tier runs a real node, as root only: others are not asked for its packages
if [ "$(id -u)" -eq 0 ]; then
  [ -x /usr/bin/containerd ] || missing+=(containerd)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ -x /usr/sbin/iptables ] || missing+=(iptables)
  [ -x /usr/bin/podman ] || missing+=(podman)
  [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
fi
if [ ${#missing[@]} -eq 0 ]; then
  configure_podman
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system packages missing: ${missing[*]}; install them with your package manager" >&2
  echo "(on Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "setup: installing ${missing[*]} from Debian"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
configure_podman
