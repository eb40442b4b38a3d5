# Sourced by scripts/test.sh and scripts/devnet.sh: make .venv and install pouw into it
# (with the test extras when POUW_EXTRAS=test), building the C work kernel.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${POUW_EXTRAS:+[$POUW_EXTRAS]}"
