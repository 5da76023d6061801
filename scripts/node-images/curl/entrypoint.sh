#!/bin/sh
# curlimages/curl's entrypoint: arguments starting with '-' (or none) are curl's.
set -e
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- curl "$@"
fi
exec "$@"
