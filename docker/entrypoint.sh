#!/bin/sh
# pouw image entry point.
#  - `docker run IMAGE --addnode x:28733` runs pouwd (dev network, RPC and p2p on all
#    of the container's interfaces) with those flags; any other command (pouwd, pouw-cli,
#    pouw-miner, sh) runs as given.
#  - POUW_WAIT_FOR="http://node1:28732/health ...": wait (up to POUW_WAIT_TIMEOUT
#    seconds, default 300) until each answers before starting the command.
set -e
case "${1:-}" in
    ""|-*) set -- pouwd --network dev --rpc-bind 0.0.0.0 --bind 0.0.0.0 "$@" ;;
esac
if [ -n "${POUW_WAIT_FOR:-}" ]; then
    # shellcheck disable=SC2086 # a space-separated list of URLs
    /opt/pouw/bin/python /usr/local/lib/pouw-healthcheck.py --wait $POUW_WAIT_FOR \
        --timeout "${POUW_WAIT_TIMEOUT:-300}"
fi
exec "$@"
