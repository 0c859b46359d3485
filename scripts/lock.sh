#!/usr/bin/env bash
# Refresh constraints.txt: the exact versions of every Python package lab and its tests install.
# It resolves pyproject.toml's ranges afresh in a throwaway virtualenv (the newest versions they
# allow), then records them. Run it, run the test command, and commit both together:
#   bash scripts/lock.sh && bash scripts/test.sh && git commit constraints.txt -m "Refresh constraints"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
# the build backend too: setup.sh passes the file as PIP_CONSTRAINT, which reaches pip's build environments
"$tmp/venv/bin/pip" install -q --disable-pip-version-check --upgrade setuptools
"$tmp/venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
{
  echo "# Exact versions tested with lab (Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())')),"
  echo "# made by scripts/lock.sh on $(date -u +%Y-%m-%d). scripts/setup.sh installs these;"
  echo "# LAB_DEPS=newest bash scripts/setup.sh ignores them (the scheduled drift job does)."
  "$tmp/venv/bin/pip" freeze --all --exclude-editable --disable-pip-version-check | grep -v -E '^(pip|wheel)=='
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "lock: wrote constraints.txt ($(grep -c '==' constraints.txt) packages)"
