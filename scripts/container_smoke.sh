#!/usr/bin/env bash
# The privileged-container path, end to end: run inside the lab-tool image (see Dockerfile and docs/CI.md)
#   docker run --rm --privileged --pid=host --network host -v /var/run/docker.sock:/var/run/docker.sock \
#     --entrypoint bash lab-tool scripts/container_smoke.sh [pytest args...]
# It brings the book's LAN up, pings across its two routers, takes it down; does the same with the
# container-node web case (renamed ci-web); runs a few crash trials; then runs pytest (default: the
# core, trust and sealed tests). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "lab doctor"
lab doctor || true
step "lab up topologies/book-lan.yaml"
lab up topologies/book-lan.yaml
lab exec kongming20 -- ping -c1 -W2 far-host
lab down book-lan
test -z "$(ip netns list | grep '^lab-book-lan\.' || true)"

step "container nodes: book-web as ci-web"
sed 's/^name: book-web$/name: ci-web/' topologies/book-web.yaml > topologies/ci-web.yaml
trap 'lab down ci-web >/dev/null 2>&1 || true; rm -f topologies/ci-web.yaml' EXIT
lab up -q topologies/ci-web.yaml
lab exec --lab ci-web kongming20 -- wget -q -O- --header 'Connection: close' http://www.baidu.com/index.html | head -c 200
echo
lab down ci-web
test -z "$(docker ps -aq --filter label=lab.name=ci-web)"

step "crash trials (short)"
python scripts/crash_trials.py -n 5 --fault-trials 1 --lab ci-crash

step "pytest"
if [ $# -eq 0 ]; then
  set -- tests/integration/test_core.py tests/integration/test_trust.py tests/integration/test_zz_sealed.py
fi
python -m pytest -ra -p no:cacheprovider "$@"
