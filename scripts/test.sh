#!/usr/bin/env bash
# Runs every check and test casesync has: formatting, lints, unit tests,
# end-to-end tests against the real binary. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_cargo_tool() {
  # $1 = cargo subcommand, $2 = crate to install if missing
  if ! cargo "$1" --version >/dev/null 2>&1; then
    echo "==> installing $2"
    cargo install --locked "$2"
  fi
}

command -v cargo >/dev/null || { echo "error: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true
need_cargo_tool nextest cargo-nextest
# sqlite3 lets tests tamper with a store the way a local operator would.
if ! command -v sqlite3 >/dev/null; then
  echo "==> installing sqlite3"
  (apt-get update -qq && apt-get install -y -qq sqlite3) >/dev/null || echo "warning: could not install sqlite3" >&2
fi

# libfaketime runs nodes whose clocks are hours off (the clock test).
if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
  echo "==> installing faketime"
  (apt-get update -qq && apt-get install -y -qq faketime) >/dev/null || echo "warning: could not install faketime" >&2
fi

# The web UI's browser test: Debian's chromium, driven by playwright-core
# (tests/browser; npm never downloads a browser here).
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium"
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null || echo "warning: could not install chromium" >&2
fi
# schemathesis generates requests from the API's OpenAPI document.
if ! command -v schemathesis >/dev/null; then
  echo "==> installing schemathesis"
  pip install -q "schemathesis==4.32.5" || echo "warning: could not install schemathesis" >&2
fi
command -v node >/dev/null || { echo "error: Node.js not found: the browser test needs it (apt-get install nodejs)" >&2; exit 1; }
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "==> npm ci (tests/browser)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> build"
cargo build --workspace --all-targets
echo "==> tests"
cargo nextest run --workspace --no-fail-fast "$@"
# The README's first command must keep working: run the demo end to end.
echo "==> scripts/demo.sh"
LOG="$(scripts/target-dir.sh)/demo.log"
scripts/demo.sh >"$LOG" 2>&1 || { tail -40 "$LOG"; echo "error: scripts/demo.sh failed (log: $LOG)" >&2; exit 1; }
echo "demo ok"
