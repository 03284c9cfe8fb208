#!/usr/bin/env bash
# tdcheck in any CI (or cron): install from a checkout of the tdcheck repository (it is not
# on a package index), run one comparison and a small sweep, keep the reports.
#
#   TDCHECK_SRC=path/to/tdcheck bash docs/ci/ci.sh      # default: the checkout this file is in
#
# The exit code is the verdict: 0 equivalent, 1 not equivalent, 2 bad usage, 3 environment.
set -euo pipefail

src="${TDCHECK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
out="${TDCHECK_OUT:-tdcheck-reports}"
mkdir -p "$out"

if ! command -v tdcheck >/dev/null 2>&1; then
    python3 -m venv .venv-tdcheck
    # shellcheck disable=SC1091
    . .venv-tdcheck/bin/activate
    python -m pip install --quiet "$src"
fi
tdcheck --version

status=0
tdcheck compare --variants dense,time-distributed,conv1d --input random \
    --output "$out/compare.json" --quiet || status=$?
sweep_status=0
tdcheck sweep --hidden 4,8 --seq 3 --rnn lstm --quiet \
    --output "$out/sweep.json" --junit "$out/junit.xml" || sweep_status=$?
if [ "$sweep_status" -gt "$status" ]; then status=$sweep_status; fi

case $status in
    0) echo "tdcheck: equivalent" ;;
    1) echo "tdcheck: NOT equivalent (see $out/)" >&2 ;;
    *) echo "tdcheck: could not check (exit $status)" >&2 ;;
esac
exit "$status"
