#!/usr/bin/env bash
# Prints cargo's target directory (CARGO_TARGET_DIR, a config's build.target-dir,
# or ./target): the scripts find the binaries and write their output there.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
