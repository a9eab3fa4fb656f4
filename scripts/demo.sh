#!/usr/bin/env bash
# casesync demo: the fictional joint investigation "Op Lantern". Three
# agencies on one machine, each its own data
# dir and `casesync serve` process on 127.0.0.1: a UK regional unit (uk-east),
# the Romanian police (ro-police) and Europol. They form a federation, open a
# joint case, record what each knows, keep working while one is offline, and
# converge. Every name, number and address is invented.
#
#   scripts/demo.sh          # builds casesync, runs in target/demo/ (recreated; cargo's target dir)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building casesync" >&2
cargo build -q -p casesync-node
TARGET=$(scripts/target-dir.sh)
BIN="$TARGET/debug/casesync"
DEMO="$TARGET/demo"
rm -rf "$DEMO"
mkdir -p "$DEMO"
export CASESYNC_PASSPHRASE="demo passphrase - use a real one"

cs() { local node=$1; shift; CASESYNC_OPERATOR="analyst@$node" "$BIN" --data-dir "$DEMO/$node" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
peer_of() { cs "$1" --json id | sed -n 's/.*"peer_id": "\([^"]*\)".*/\1/p'; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start NODE [PEER_ADDR...]: runs `serve` and sets ADDR_<NODE> to its address.
start() {
  local node=$1; shift
  local args=()
  for p in "$@"; do args+=(--peer "$p"); done
  # The binary itself in the background (not through `cs`, whose subshell
  # would get the PID): `stop` and the exit trap must reach the serve process.
  CASESYNC_OPERATOR="analyst@$node" "$BIN" --data-dir "$DEMO/$node" serve --listen /ip4/127.0.0.1/tcp/0 "${args[@]}" >"$DEMO/$node.out" 2>"$DEMO/$node.log" &
  local pid=$!
  PIDS+=("$pid")
  eval "PID_${node//-/_}=$pid"
  for _ in $(seq 1 200); do
    if grep -q '^listening on ' "$DEMO/$node.out"; then break; fi
    sleep 0.05
  done
  local addr
  addr=$(sed -n 's/^listening on //p' "$DEMO/$node.out" | head -1)
  [ -n "$addr" ] || { echo "error: $node did not start; see $DEMO/$node.log" >&2; exit 1; }
  eval "ADDR_${node//-/_}=$addr"
  echo "$node serving at $addr"
}

stop() {
  local node=$1 var="PID_${1//-/_}"
  kill "${!var}" 2>/dev/null || true
  wait "${!var}" 2>/dev/null || true
  echo "$node is offline"
}

# converge CASE NODE...: waits until every node lists the same records.
converge() {
  local case=$1; shift
  for _ in $(seq 1 600); do
    local first="" same=1
    for n in "$@"; do
      local l
      l=$(cs "$n" --json record list "$case" 2>/dev/null || echo "none")
      if [ -z "$first" ]; then first=$l; elif [ "$l" != "$first" ]; then same=0; fi
    done
    if [ "$same" = 1 ] && [ "$first" != "none" ]; then echo "converged: $* hold the same $(cs "$1" record list "$case" | tail -1)"; return 0; fi
    sleep 0.1
  done
  echo "error: $* did not converge" >&2
  exit 1
}

say "1. each agency creates its node"
cs uk-east init --name uk-east --org "ROCU East" --country GB
cs ro-police init --name ro-police --org "Poliția Română" --country RO
cs europol init --name europol --org "Europol" --country NL
cs uk-force init --name uk-force --org "County Police" --country GB >/dev/null

say "2. uk-east creates the federation and enrolls the others by their cards"
cs uk-east federation create --name "JIT Lantern"
for n in ro-police europol uk-force; do
  token=$(cs uk-east federation invite "$(cs "$n" id --card)")
  cs "$n" federation join "$token"
done
cs uk-east trust list

say "3. the joint case: ro-police and europol as contributors"
CASE=$(cs uk-east case create --title "Op Lantern (fictional)")
cs uk-east case member add "$CASE" "$(peer_of ro-police)" --role contributor
cs uk-east case member add "$CASE" "$(peer_of europol)" --role contributor

say "4. all three serve; the case reaches every member"
start uk-east
start ro-police "$ADDR_uk_east"
start europol "$ADDR_uk_east" "$ADDR_ro_police"
converge "$CASE" uk-east ro-police europol

say "5. each agency records what it knows, on its own node"
MARIN=$(cs ro-police record add "$CASE" --type person --field name="Marin Dobre" --field category=suspect --field role=recruiter --grading 3x5x2:1AP)
ELENA=$(cs ro-police record add "$CASE" --type person --field name="Elena Dobre" --field category=suspect)
TRD=$(cs ro-police record add "$CASE" --type organisation --field name="Transport Rapid Dobre SRL" --field country=RO)
cs ro-police record add "$CASE" --type phone --field number="+40 700 000 111" >/dev/null
cs ro-police record add "$CASE" --type bank_account --field iban=RO41RNCB0082044617040001 >/dev/null
cs ro-police record add "$CASE" --type location --field address="Str. Fictivă 12, Bacău" >/dev/null
cs ro-police record add "$CASE" --type event --field title="recruitment meeting" --field when=2021-03-14 >/dev/null
cs ro-police record add "$CASE" --type link --field from="$ELENA" --field to="$TRD" --field link_type=director >/dev/null
VICTOR=$(cs uk-east record add "$CASE" --type person --field name="Victor Ilie" --field category=suspect --field role="UK controller")
VICTIM=$(cs uk-east record add "$CASE" --type person --field name="Victim A" --field category=victim --releasable-to GB,RO,Europol)
SPARKLE=$(cs uk-east record add "$CASE" --type organisation --field name="Sparkle Hand Car Wash Ltd" --field country=GB)
cs uk-east record add "$CASE" --type phone --field number="07700 900123" >/dev/null
cs uk-east record add "$CASE" --type bank_account --field iban=GB29NWBK60161331926819 >/dev/null
cs uk-east record add "$CASE" --type location --field address="Unit 4, Fictional Trading Estate, Corby" >/dev/null
cs uk-east record add "$CASE" --type event --field title="cash withdrawals" --field when=2021-11-02 >/dev/null
cs uk-east record add "$CASE" --type link --field from="$VICTOR" --field to="$SPARKLE" --field link_type=director --field status=confirmed >/dev/null
converge "$CASE" uk-east ro-police europol
cs uk-east record add "$CASE" --type link --field from="$MARIN" --field to="$VICTOR" --field link_type=associate --field status=unconfirmed >/dev/null
WALLET=$(cs europol record add "$CASE" --type crypto_wallet --field address=bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4 --field currency=BTC --field exchange=ExampleX --field holder=unknown)
cs europol record add "$CASE" --type crypto_wallet --field address=0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed --field currency=ETH >/dev/null
cs europol record add "$CASE" --type link --field from="$WALLET" --field to="$VICTOR" --field link_type=owner --field status=unconfirmed >/dev/null
cs europol record add "$CASE" --type note --field text="Proceeds moved through ExampleX; see wallet links." --grading europol:B2 >/dev/null
converge "$CASE" uk-east ro-police europol

say "6. day of action: uk-east is offline; both sides edit Victor Ilie"
stop uk-east
cs uk-east record edit "$VICTOR" --field status=arrested >/dev/null
cs ro-police record edit "$VICTOR" --field alias="Vic" >/dev/null
echo "uk-east set status=arrested offline; ro-police added alias=Vic"
start uk-east "$ADDR_ro_police" "$ADDR_europol"
converge "$CASE" uk-east ro-police europol
cs europol record show "$VICTOR"

say "7. handling: Victim A is releasable to GB, RO and Europol; uk-force (GB) may join as observer"
cs uk-east case member add "$CASE" "$(peer_of uk-force)" --role observer
cs gendarmerie init --name gendarmerie --org "Gendarmerie" --country FR >/dev/null
token=$(cs uk-east federation invite "$(cs gendarmerie id --card)")
cs gendarmerie federation join "$token" >/dev/null
if cs uk-east case member add "$CASE" "$(peer_of gendarmerie)" --role observer; then
  echo "unexpected: handling rule not enforced" >&2; exit 1
fi
start uk-force "$ADDR_uk_east"
converge "$CASE" uk-east ro-police europol uk-force
if cs uk-force record add "$CASE" --type note --field text="observer writes"; then
  echo "unexpected: an observer could write" >&2; exit 1
fi

say "8. the converged case, from every node"
for n in uk-east ro-police europol uk-force; do
  echo "--- $n"
  cs "$n" record list "$CASE" | tail -1
done
cs ro-police record list "$CASE"
cs uk-east case show "$CASE"

say "9. integrity and rest: every log verifies; no name is readable on disk"
for n in uk-east ro-police europol uk-force; do cs "$n" log verify; cs "$n" audit verify; done
if grep -r -a -l -e "Marin Dobre" -e "Victim A" -e "RO41RNCB" "$DEMO"/*/; then
  echo "unexpected: plaintext found at rest" >&2; exit 1
fi
echo "grep for \"Marin Dobre\", \"Victim A\", \"RO41RNCB\" in every data dir: nothing found"

say "10. the audit log on uk-east: who consulted Victim A, and which nodes received the case"
CASESYNC_OPERATOR="dc.hughes@uk-east" "$BIN" --data-dir "$DEMO/uk-east" --justification "safeguarding review" record show "$VICTIM" >/dev/null
cs uk-east audit list --case "$CASE" --action consultation | grep -e "$VICTIM"
echo "--- disclosures of the case's entries (sync.send), by receiving node:"
cs uk-east audit list --case "$CASE" --action sync.send | grep -o "peer [^ ]*" | sort | uniq -c
cs uk-east audit export --case "$CASE" --out "$DEMO/lantern-audit.jsonl"
echo
echo "demo finished; data dirs and serve logs are in $DEMO"
