#!/usr/bin/env bash
# Set up (once) and run a local dev network: 3 pouwd nodes, 1 pouw-miner, a faucet wallet,
# and a live status view until Ctrl-C. Arguments go to scripts/devnet.py (--help).
set -euo pipefail
POUW_EXTRAS=${POUW_EXTRAS:-devnet} source "$(dirname "$0")/bootstrap.sh"
exec "$POUW_VENV/bin/python" scripts/devnet.py "$@"
