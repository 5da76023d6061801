#!/usr/bin/env bash
# Installs the Debian packages MasterTrade's set-up and tests need, when they are missing:
# npm (helm/kubectl come from an npm package), PostgreSQL, RabbitMQ, Redis (the services' real
# infrastructure), prometheus (promtool checks the rendered Prometheus config), shellcheck, and
# etcd + jq (the real Kubernetes control plane of the k8s test tier, ../shared/k8s, needs them),
# chromium (the monitoring UI's browser tests).
set -euo pipefail

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
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system packages missing: ${missing[*]}; install them with your package manager" >&2
  echo "(on Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "setup: installing ${missing[*]} from Debian"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
