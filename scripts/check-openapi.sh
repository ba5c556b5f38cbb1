#!/usr/bin/env bash
# Validates the OpenAPI document the router serves: starts the release binary on a free port
# (GET /openapi.json answers while the model is still loading), saves the document and checks
# it with openapi-spec-validator. Exits non-zero on any finding.
#
#   scripts/check-openapi.sh [OUT.json]    (default target/openapi.json)
#
# Needs ./target/release/router (cargo build --release). Installs the validator with pip
# (quietly, pinned) into $OPENAPI_TOOLS (default target/openapi-tools, git-ignored), so it
# needs python3 -m pip and a package index, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

VALIDATOR_VERSION=0.9.0
out=${1:-target/openapi.json}
router=./target/release/router
[ -x "$router" ] || { echo "check-openapi: build first (cargo build --release)" >&2; exit 1; }

tools=${OPENAPI_TOOLS:-target/openapi-tools}
stamp="$tools/.installed-$VALIDATOR_VERSION"
if [ ! -e "$stamp" ]; then
  rm -rf "$tools"
  # --target installs beside the system's packages without touching them (and works where
  # the system Python is marked externally managed).
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$tools" "openapi-spec-validator==$VALIDATOR_VERSION"
  touch "$stamp"
fi
export PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Created here, not by the background redirection: the first poll may run before the child's.
: >"$work/log"
ROUTER_LOG=warn,semantic_router::serve::run=info \
  "$router" serve --addr 127.0.0.1:0 --data-dir "$work/data" 2>"$work/log" &
pid=$!
addr=
for _ in $(seq 600); do
  addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; echo "check-openapi: the router exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/log" >&2; echo "check-openapi: the router never listened" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
curl --silent --show-error --fail --max-time 30 "http://$addr/openapi.json" -o "$out"
echo "openapi-spec-validator $VALIDATOR_VERSION: $out (from http://$addr/openapi.json)"
python3 -m openapi_spec_validator "$out"
