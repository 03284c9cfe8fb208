#!/usr/bin/env bash
# tdcheck in any CI (or cron), in YOUR repository: install tdcheck, run one comparison and a
# small sweep, keep the reports. Copy this file into your repository.
#
# tdcheck is on no package index, so say where it comes from (the first that is set):
#   TDCHECK_WHEEL=path/to/tdcheck-0.1.0-py3-none-any.whl    a wheel (e.g. a CI artifact)
#   TDCHECK_SRC=path/to/tdcheck                              a checkout of tdcheck
#   TDCHECK_GIT=<repository URL> TDCHECK_REF=<tag or commit> cloned into .tdcheck-src at a
#                                                            pinned ref (pin it: a tag or commit)
#   (none of them)                                           the tdcheck checkout this file is in
# TDCHECK_EXTRAS: the extras to install with it (default: tensorflow; e.g. tensorflow,jax).
# Nothing is installed when `tdcheck` is already on PATH.
#
# The exit code is the verdict: 0 equivalent, 1 not equivalent, 2 bad usage, 3 environment
# (tdcheck or a framework could not be installed or imported, no GPU); 3 is never folded into 2.
set -euo pipefail

out="${TDCHECK_OUT:-tdcheck-reports}"
extras="${TDCHECK_EXTRAS:-tensorflow}"

if ! command -v tdcheck >/dev/null 2>&1; then
    if [ -n "${TDCHECK_WHEEL:-}" ]; then
        spec="$(cd "$(dirname "$TDCHECK_WHEEL")" && pwd)/$(basename "$TDCHECK_WHEEL")[$extras]"
    elif [ -n "${TDCHECK_SRC:-}" ]; then
        spec="$(cd "$TDCHECK_SRC" && pwd)[$extras]"
    elif [ -n "${TDCHECK_GIT:-}" ]; then
        if [ -z "${TDCHECK_REF:-}" ]; then
            echo "ci.sh: TDCHECK_GIT needs TDCHECK_REF, the tag or commit of tdcheck to run" >&2
            exit 2
        fi
        rm -rf .tdcheck-src
        git clone --quiet "$TDCHECK_GIT" .tdcheck-src || exit 3
        git -C .tdcheck-src checkout --quiet "$TDCHECK_REF" || exit 3
        spec="$(pwd)/.tdcheck-src[$extras]"
    else
        here="$(cd "$(dirname "$0")/../.." && pwd)"
        if ! grep -qs '^name = "tdcheck"$' "$here/pyproject.toml"; then
            echo "ci.sh: tdcheck is not installed and this file is not in a checkout of" \
                "tdcheck: set TDCHECK_WHEEL, TDCHECK_SRC, or TDCHECK_GIT and TDCHECK_REF" >&2
            exit 3
        fi
        spec="$here[$extras]"
    fi
    python3 -m venv .venv-tdcheck || exit 3
    # shellcheck disable=SC1091
    . .venv-tdcheck/bin/activate
    python -m pip install --quiet "$spec" || {
        echo "ci.sh: could not install $spec" >&2
        exit 3
    }
fi
tdcheck --version
mkdir -p "$out"

status=0
tdcheck compare --variants dense,time-distributed,conv1d --input random \
    --output "$out/compare.json" --quiet || status=$?
sweep_status=0
tdcheck sweep --hidden 4,8 --seq 3 --rnn lstm --quiet \
    --output "$out/sweep.json" --junit "$out/junit.xml" || sweep_status=$?
# The worse of the two: 3 (environment) over 2 (usage) over 1 (not equivalent) over 0.
if [ "$sweep_status" -gt "$status" ]; then status=$sweep_status; fi

case $status in
    0) echo "tdcheck: equivalent" ;;
    1) echo "tdcheck: NOT equivalent (see $out/)" >&2 ;;
    2) echo "tdcheck: bad usage (exit 2): fix the command line" >&2 ;;
    3) echo "tdcheck: environment problem (exit 3): a framework is missing or broken" >&2 ;;
    *) echo "tdcheck: could not check (exit $status)" >&2 ;;
esac
exit "$status"
