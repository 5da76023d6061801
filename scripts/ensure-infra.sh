#!/usr/bin/env bash
# Makes sure PostgreSQL, RabbitMQ and Redis answer on localhost, as the infra tests need:
# starts the machine's own instances (Debian packages) when they are installed but not running.
# Never stops anything.
set -uo pipefail

wait_for() {  # name, seconds, command...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && { echo "infra: $name is up"; return 0; }; sleep 1; done
  echo "infra: $name did not come up within ${seconds}s" >&2; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "infra: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "infra: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "infra: starting RabbitMQ"
  rabbitmq-server -detached || true
fi

wait_for PostgreSQL 60 pg_isready -h 127.0.0.1 -p 5432
wait_for Redis 30 redis-cli -h 127.0.0.1 -p 6379 ping
wait_for RabbitMQ 90 bash -c '(exec 3<>/dev/tcp/127.0.0.1/5672)'
