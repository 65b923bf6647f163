#!/usr/bin/env bash
# Makes (once) a Python venv with pyuvdata from PyPI, for the interoperability
# tests. Debian's python3 makes it; it does not see Debian's site packages,
# whose older modules (coverage, for one) break pyuvdata's dependencies.
# Usage: make_pyvenv.sh VENV_DIR
set -euo pipefail
venv=$1
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import pyuvdata" 2>/dev/null; then
    exit 0
fi
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check pyuvdata
"$venv/bin/python" -c "import pyuvdata; print('pyuvdata', pyuvdata.__version__)"
