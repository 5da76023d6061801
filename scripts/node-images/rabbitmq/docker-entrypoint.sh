#!/bin/sh
# RABBITMQ_DEFAULT_USER/PASS/VHOST as the rabbitmq image honours them: the user, password and
# virtual host RabbitMQ creates on first boot, passed as the `rabbit` application's settings (the
# configuration file itself stays the one the chart mounts). Values are letters, digits and '/'.
set -eu
extra=""
if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then
    extra="$extra -rabbit default_user <<\"$RABBITMQ_DEFAULT_USER\">>"
fi
if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then
    extra="$extra -rabbit default_pass <<\"$RABBITMQ_DEFAULT_PASS\">>"
fi
if [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ]; then
    extra="$extra -rabbit default_vhost <<\"$RABBITMQ_DEFAULT_VHOST\">>"
fi
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-}$extra"
exec "$@"
