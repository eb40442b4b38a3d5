# Sourced by scripts/test.sh and scripts/devnet.sh: make the venv POUW_VENV (.venv) with
# PYTHON (python3) and install pouw into it (with the test extras when POUW_EXTRAS=test),
# building the C extensions.
# The install is skipped while a stamp in the venv matches a hash of what it depends on
# (the Python version, pyproject.toml, setup.py, the C extensions' sources), so it runs on
# a fresh clone and after any of those change, not on every call.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
POUW_VENV=${POUW_VENV:-.venv}
if [ ! -x "$POUW_VENV/bin/python" ]; then
    "$PYTHON" -m venv "$POUW_VENV"
fi
pouw_inputs=$( { "$POUW_VENV/bin/python" -c 'import sys; print(sys.version)'; cat pyproject.toml setup.py;
                 find miner client -name '*.c' -o -name '*.h' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1)
pouw_stamp=$POUW_VENV/.pouw-installed${POUW_EXTRAS:+-$POUW_EXTRAS}
# an install with extras also serves a plain one
if [ "$(cat "$pouw_stamp" 2>/dev/null)" != "$pouw_inputs" ] \
        && { [ -n "${POUW_EXTRAS:-}" ] || ! grep -qxF "$pouw_inputs" "$POUW_VENV"/.pouw-installed-* 2>/dev/null; }; then
    "$POUW_VENV/bin/python" -m pip install --quiet --upgrade pip
    "$POUW_VENV/bin/python" -m pip install --quiet -e ".${POUW_EXTRAS:+[$POUW_EXTRAS]}"
    echo "$pouw_inputs" > "$pouw_stamp"
fi
unset pouw_inputs pouw_stamp
