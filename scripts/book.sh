#!/usr/bin/env bash
# The main job: set up the machine, build the images, and run the book's whole
# catalogue, each experiment in its own sealed lab. Ends with a summary table and
# the path of the HTML report. Extra arguments go to `lab run` (e.g. --jobs 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lab images build
exec .venv/bin/lab run --all --jobs "${LAB_JOBS:-2}" --out runs/book "$@"
