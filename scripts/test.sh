#!/usr/bin/env bash
# The test command: set up the machine, lint and type-check, then run every test
# (unit and integration: real namespaces, containers and captures) as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check lab tests benchmarks scripts
.venv/bin/mypy lab
.venv/bin/mypy --config-file tests/mypy.ini tests
set +e
.venv/bin/python -m pytest -ra -p no:cacheprovider "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure of this suite, say so.
if [ "$rc" = 5 ]; then echo "test: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
