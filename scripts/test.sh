#!/usr/bin/env bash
# Set up (once) and run the whole test suite; extra arguments go to pytest.
set -euo pipefail
POUW_EXTRAS=test source "$(dirname "$0")/bootstrap.sh"
exec "$POUW_VENV/bin/python" -m pytest "$@"
