#!/usr/bin/env bash
# Creates .venv-sdk at the project root with SailPoint's official Python SDK
# (PyPI package `sailpoint`) and its dependencies at the versions pinned in
# tests/sdk/requirements.txt. tests/sdk_python.rs runs the SDK from this venv
# against `patrol sim`. Running the script again only installs what changed.
#
# Environment: PYTHON names the interpreter that creates the venv (default
# python3, version 3.9 or newer).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-sdk"
requirements="$root/tests/sdk/requirements.txt"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi

stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    echo "$venv is up to date"
    exit 0
fi

"$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    --requirement "$requirements"
echo "$wanted" > "$stamp"
echo "installed $("$venv/bin/python" -m pip show sailpoint | grep '^Version:') of sailpoint into $venv"
