#!/usr/bin/env bash
# CI: the recorder suites on Python 3.9 with every library at its oldest supported release.
#
# This is the nox session "oldest-3.9" (noxfile.py: the test files, and the install of
# ".[test]" under the pins of .ci/constraints-oldest.txt), run by a nox installed in a fresh
# venv, with the session's venv in the same temporary folder, removed at the end. About 1.5 min
# with a warm pip cache. Python 3.9 is looked up as python3.9 on PATH, then in pyenv; the run
# fails if there is none.
#
#   bash .ci/oldest.sh                 # what CI runs
#   bash .ci/oldest.sh -x -k aiohttp   # arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/nox"
"$tmp/nox/bin/python" -m pip install -q --disable-pip-version-check "nox>=2025.10.14"
"$tmp/nox/bin/nox" --envdir "$tmp/sessions" --sessions oldest-3.9 -- "$@"

echo "ci: oldest versions done in $(( $(date +%s) - start )) s"
