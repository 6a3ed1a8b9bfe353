#!/usr/bin/env bash
# The HAR consumers that tests/test_consumers.py runs, in a venv of their own.
#
# mitmproxy pulls in ~130 MB of dependencies that harlem must not be tested against, so the
# consumers get a venv of their own, cached in a folder named after the interpreter's version
# and the pins: the first run takes ~20 s, later runs reuse it. Prints the venv's path as its
# last line (pip's output goes to stderr).
#
#   bash .ci/consumers.sh            # create (or reuse) it, print its path
#   PYTHON=python3.12 bash .ci/consumers.sh
#
# Environment: PYTHON (default python3), HARLEM_CONSUMERS_CACHE (default /tmp), and the pins
# MITMPROXY_VERSION / HARALYZER_VERSION (docs/compatibility.md lists the tested ones).
set -euo pipefail

python=${PYTHON:-python3}
mitmproxy_version=${MITMPROXY_VERSION:-11.0.2}
haralyzer_version=${HARALYZER_VERSION:-2.4.0}
cache=${HARLEM_CONSUMERS_CACHE:-/tmp}

py_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv="$cache/harlem-consumers-py$py_version-mitmproxy$mitmproxy_version-haralyzer$haralyzer_version"

mkdir -p "$cache"
exec 9>"$venv.lock"
flock 9  # two test sessions at once: the second waits, then reuses the first one's venv
if [ ! -f "$venv/.complete" ]; then
  # The marker is written last, so an interrupted install is rebuilt, never half-used.
  # (A venv cannot be renamed into place: its scripts hold their absolute path.)
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "mitmproxy==$mitmproxy_version" "haralyzer==$haralyzer_version" >&2
  touch "$venv/.complete"
fi
echo "$venv"
