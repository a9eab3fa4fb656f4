#!/usr/bin/env bash
# Soak: what CI runs a few times, run many times, plus a long memory run.
#   1. SIGKILL at random points of import, edits, sync (both sides), key
#      rotation and membership change: KILLS kills per scenario;
#   2. random operations under partitions: the seeds in SEEDS (A..B);
#   3. the HTTP API under schemathesis, API_FUZZ requests per operation;
#   4. three serving nodes with steady edits for MINUTES, RSS sampled;
#   5. an evidence fetch and an erasure cut by EVIDENCE_KILLS and
#      ERASURE_KILLS kills (50 each);
#   6. one node holding SCALE records (10,000,000; 0 skips): import, disk,
#      listing, the first sync of them all to a new member, and bundle and
#      import memory (the bench's scale and memory rows at that size; about
#      17 GB of disk and two hours).
# Prints kills survived per scenario, seeds run and failing seeds (with the
# command that replays one), and RSS start/end/peak per node.
#
#   scripts/soak.sh                               # 100 kills, seeds 100..150, 30 min (about 1.5 h)
#   KILLS=20 SEEDS=1000..1005 MINUTES=2 scripts/soak.sh   # a quick pass
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${KILLS:-100}
SEEDS=${SEEDS:-100..150}
MINUTES=${MINUTES:-30}

need_cargo_tool() {
  if ! cargo "$1" --version >/dev/null 2>&1; then
    echo "==> installing $2"
    cargo install --locked "$2"
  fi
}
need_cargo_tool nextest cargo-nextest
command -v sqlite3 >/dev/null || (apt-get update -qq && apt-get install -y -qq sqlite3) >/dev/null
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq faketime) >/dev/null
command -v schemathesis >/dev/null || pip install -q "schemathesis==4.32.5"

mkdir -p target/soak
REPORT="$PWD/target/soak/report.jsonl"
rm -f "$REPORT"
echo "==> building (release binary for the runs)"
cargo build -q --release -p casesync-node
cargo build -q -p casesync-e2e --tests
export CASESYNC_BIN="$PWD/target/release/casesync"

status=0
echo "==> kills: $KILLS per scenario"
CASESYNC_KILLS=$KILLS CASESYNC_SOAK_REPORT="$REPORT" \
  cargo nextest run -p casesync-e2e --no-fail-fast --test-threads 1 -E 'test(/^kills::/)' \
  >target/soak/kills.log 2>&1 || { status=1; echo "kills: FAILED (target/soak/kills.log)"; }
echo "==> the HTTP API under generated requests: ${API_FUZZ:-1000} per operation"
echo "==> evidence fetch cut by ${EVIDENCE_KILLS:-50} kills of the receiver"
CASESYNC_EVIDENCE_KILLS=${EVIDENCE_KILLS:-50} \
  cargo nextest run -p casesync-e2e --no-fail-fast -E 'test(/^evidence::a_fetch_cut/)' \
  >target/soak/evidence-kills.log 2>&1 || { status=1; echo "evidence kills: FAILED (target/soak/evidence-kills.log)"; }
echo "==> erasure cut by ${ERASURE_KILLS:-50} kills"
CASESYNC_ERASURE_KILLS=${ERASURE_KILLS:-50} \
  cargo nextest run -p casesync-e2e --no-fail-fast -E 'test(/^erasure::an_erasure_cut/)' \
  >target/soak/erasure-kills.log 2>&1 || { status=1; echo "erasure kills: FAILED (target/soak/erasure-kills.log)"; }
CASESYNC_API_FUZZ_EXAMPLES=${API_FUZZ:-1000} \
  cargo nextest run -p casesync-e2e --no-fail-fast --no-capture -E 'test(/^http::generated/)' \
  >target/soak/api-fuzz.log 2>&1 || { status=1; echo "api fuzz: FAILED (target/soak/api-fuzz.log)"; }
grep -h "^schemathesis:" target/soak/api-fuzz.log || true
echo "==> partitions: seeds $SEEDS"
CASESYNC_PARTITION_SEEDS=$SEEDS CASESYNC_SOAK_REPORT="$REPORT" \
  cargo nextest run -p casesync-e2e --no-fail-fast -E 'test(/^partition::random/)' \
  >target/soak/partition.log 2>&1 || { status=1; echo "partitions: FAILED (target/soak/partition.log)"; }

python3 - "$REPORT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
kills = [r for r in rows if r.get("harness") == "kills"]
print("\nkills survived (each followed by integrity_check, log verify, audit verify):")
print(f"{'scenario':<26} {'kills':>6} {'finished first':>15}  notes")
for r in kills:
    notes = {k: v for k, v in r.items() if k not in ("harness", "scenario", "kills", "finished", "seed")}
    print(f"{r['scenario']:<26} {r['kills']:>6} {r['finished']:>15}  {notes}")
parts = [r for r in rows if r.get("harness") == "partition"]
failed = sorted(r["seed"] for r in parts if r.get("failed"))
print(f"\npartition seeds run: {len(parts)}, failed: {len(failed)}")
for s in failed:
    print(f"  FAILING SEED {s}: CASESYNC_PARTITION_SEEDS={s} cargo nextest run -p casesync-e2e partition")
PY

echo "==> RSS soak: 3 nodes, $MINUTES min of steady edits"
python3 scripts/soak_rss.py "$MINUTES" || status=1
if [ "${SCALE:-10000000}" != 0 ]; then
  echo "==> scale: one node holding ${SCALE:-10000000} records"
  BENCH_BUNDLE_RECORDS=${SCALE:-10000000} python3 scripts/bench.py --bin target/release/casesync \
    --out target/soak/scale --no-compare --scale-only || { status=1; echo "scale: FAILED"; }
fi
exit $status
