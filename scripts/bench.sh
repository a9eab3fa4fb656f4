#!/usr/bin/env bash
# Benchmarks casesync on this machine: bulk import (records/s, bytes on disk per
# record, peak RSS), time to open a node holding 100,000 records, `record show`
# latency, initial sync between two processes (seconds, bytes on the wire through
# a counting TCP relay, peak RSS), edit-to-visible latency (2 nodes, 5-node
# line), and bytes per anti-entropy round between in-sync nodes sharing 1 and
# 1,000 cases, the cost of auditing (import and show, audited vs raw, as
# ratios in one run), and what must stay linear under a hostile partner (a
# control log, one record's edits at once, a registry; two sizes each), and
# the web front end under 50 connections on a 100,000-record case while a
# partner syncs in, with the link chart of 1,000 records rendered in chromium.
# At BENCH_BUNDLE_RECORDS (1,000,000) records on one node: import, disk,
# listing, and the first sync of them all to a new member (both sides' peak
# RSS). Prints a table and writes target/bench/node.json, and names each
# figure that fell behind the previous run's by more than 25% (the regression
# guard; the previous file is kept as node.prev.json). First, the same scenarios
# side by side with automerge-repo and samod (see BENCHMARKS.md):
# target/bench/compare.json.
#
#   scripts/bench.sh                          # 10,000 and 100,000 records, 20 attempts
#   scripts/bench.sh --quick                  # the side-by-side table at small sizes
#   scripts/bench.sh --compare-only           # the side-by-side table at full sizes
#   BENCH_ONLY=sync,latency scripts/bench.sh --quick   # some scenarios of it
#   BENCH_SIZES=1000 scripts/bench.sh         # quick run
#   BENCH_SYNC=0 scripts/bench.sh             # local rows only
#   BENCH_EDITS=500,2000 BENCH_CONTROL_OPS=1000,4000 BENCH_REGISTRY=100,400  # hardening sizes
#   BENCH_WEB_RECORDS=10000 BENCH_WEB_SECONDS=5 scripts/bench.sh   # the web rows smaller (BENCH_WEB=0: none)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "error: python3 is needed to drive the benchmark" >&2; exit 1; }
# /usr/bin/time measures each command's peak RSS.
if [ ! -x /usr/bin/time ]; then
  echo "==> installing time" >&2
  (apt-get update -qq && apt-get install -y -qq time) >/dev/null || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
fi
# wrk drives the web front end's load rows; chromium and playwright-core
# (tests/browser) render its chart.
if ! command -v wrk >/dev/null; then
  echo "==> installing wrk" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null || echo "warning: wrk not installed; the web rows are left out" >&2
fi
if [ ! -x /usr/bin/chromium ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null || echo "warning: chromium not installed; the chart row is left out" >&2
fi
if command -v npm >/dev/null && [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent) >&2 || true
fi
echo "==> building casesync (release)" >&2
cargo build --release -p casesync-node --bin casesync --example audit_cost --example hardening_cost >&2
# The peers casesync is compared with, pinned: automerge-repo (Node.js) and samod
# (Rust, its own Cargo project outside the workspace). A peer that cannot be
# set up is left out of the table with a warning.
if command -v npm >/dev/null && [ ! -d bench/peers/js/node_modules ]; then
  echo "==> installing the automerge-repo harness (npm)" >&2
  (cd bench/peers/js && npm install --no-audit --no-fund >&2) || echo "warning: automerge-repo harness not installed" >&2
fi
if [ -f bench/peers/samod/Cargo.toml ]; then
  echo "==> building the samod harness (release)" >&2
  cargo build --release --locked --manifest-path bench/peers/samod/Cargo.toml >&2 || echo "warning: samod harness not built" >&2
fi
exec python3 scripts/bench.py --bin target/release/casesync --out target/bench "$@"
