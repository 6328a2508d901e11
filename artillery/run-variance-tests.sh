#!/usr/bin/env bash
# Thin wrapper: run the variance experiment's five-window schedule with the pinned Artillery.
#
#   artillery/run-variance-tests.sh [PROFILE] [options]
#
# PROFILE defaults to quick (local testbed, compressed schedule). Options go to
# `python -m hybridopt collect` unchanged: --force, --window NAME, and for the aws profile
# --aws-opt-in and --allow-outside-window. All logic (windows, resume, manifests, the
# processor's run config) lives in lib/hybridopt/collection/; this script only finds the venv and
# installs Artillery when it is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
profile="quick"
if [[ $# -gt 0 && "$1" != -* ]]; then
  profile="$1"
  shift
fi
python="${PYTHON:-$root/.venv/bin/python}"
if [[ ! -x "$python" ]]; then
  echo "no Python venv at $root/.venv: run 'make install' first (or set PYTHON)" >&2
  exit 2
fi
if [[ ! -f "$here/node_modules/artillery/package.json" ]]; then
  make -C "$root" install-artillery
fi
cd "$root"
exec "$python" -m hybridopt collect --profile "$profile" "$@"
