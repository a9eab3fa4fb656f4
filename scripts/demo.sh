#!/usr/bin/env bash
# casesync demo: one node (uk-east, a UK regional organised crime unit) opens the
# fictional joint investigation "Op Lantern" (../shared/demo-scenario.md), records
# the picture, adds the Romanian partner by its node card, shows that handling
# rules hold, and proves nothing readable is left on disk.
# (Three agencies syncing over the network come with the sync issue.)
#
#   scripts/demo.sh          # builds casesync, runs in target/demo/ (recreated)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building casesync" >&2
cargo build -q -p casesync-node
BIN="$PWD/target/debug/casesync"
DEMO="$PWD/target/demo"
rm -rf "$DEMO"
mkdir -p "$DEMO"
export CASESYNC_PASSPHRASE="demo passphrase - use a real one"
export CASESYNC_OPERATOR="DC Harper (demo)"

cs() { "$BIN" --data-dir "$DEMO/uk-east" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. uk-east creates its node and opens the case"
cs init --name uk-east --org "ROCU East" --country GB
CASE=$(cs case create --title "Op Lantern (fictional)")
echo "case: $CASE"

say "2. the Romanian unit's node, and its card (what it sends the lead)"
"$BIN" --data-dir "$DEMO/ro-police" init --name ro-police --org "Poliția Română" --country RO
RO_CARD=$("$BIN" --data-dir "$DEMO/ro-police" id --card)
echo "${RO_CARD:0:60}..."
cs case member add "$CASE" "$RO_CARD" --role contributor

say "3. recording the network"
MARIN=$(cs record add "$CASE" --type person --field name="Marin Dobre" --field category=suspect --field role=recruiter --grading 3x5x2:1AP)
ELENA=$(cs record add "$CASE" --type person --field name="Elena Dobre" --field category=suspect)
TRD=$(cs record add "$CASE" --type organisation --field name="Transport Rapid Dobre SRL" --field country=RO)
cs record add "$CASE" --type phone --field number="+40 700 000 111" --field holder="$MARIN" >/dev/null
cs record add "$CASE" --type bank_account --field iban=RO41RNCB0082044617040001 --field holder="Marin Dobre" >/dev/null
cs record add "$CASE" --type location --field address="Str. Fictivă 12, Bacău" --field lat=46.567 --field lon=26.914 >/dev/null
cs record add "$CASE" --type event --field title="recruitment meeting" --field when=2021-03-14 >/dev/null
VICTOR=$(cs record add "$CASE" --type person --field name="Victor Ilie" --field category=suspect --field role="UK controller")
VICTIM=$(cs record add "$CASE" --type person --field name="Victim A" --field category=victim --releasable-to GB,RO)
SPARKLE=$(cs record add "$CASE" --type organisation --field name="Sparkle Hand Car Wash Ltd" --field country=GB)
cs record add "$CASE" --type phone --field number="07700 900123" >/dev/null
cs record add "$CASE" --type bank_account --field iban=GB29NWBK60161331926819 >/dev/null
cs record add "$CASE" --type location --field address="Unit 4, Fictional Trading Estate, Corby" >/dev/null
cs record add "$CASE" --type event --field title="cash withdrawals" --field when=2021-11-02 >/dev/null
cs record add "$CASE" --type link --field from="$VICTOR" --field to="$SPARKLE" --field link_type=director --field status=confirmed >/dev/null
cs record add "$CASE" --type link --field from="$MARIN" --field to="$VICTOR" --field link_type=associate --field status=unconfirmed >/dev/null
cs record add "$CASE" --type link --field from="$ELENA" --field to="$TRD" --field link_type=director >/dev/null
WALLET=$(cs record add "$CASE" --type crypto_wallet --field address=bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4 --field currency=BTC --field exchange=ExampleX --field holder=unknown)
cs record add "$CASE" --type crypto_wallet --field address=0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed --field currency=ETH >/dev/null
cs record add "$CASE" --type link --field from="$WALLET" --field to="$VICTOR" --field link_type=owner --field status=unconfirmed >/dev/null
cs record add "$CASE" --type note --field text="Proceeds moved through ExampleX; see wallet links." --grading europol:B2 >/dev/null

say "4. validation: a mistyped IBAN is refused, nothing is written"
if cs record add "$CASE" --type bank_account --field iban=RO41RNCB0082044617040002; then
  echo "unexpected: a bad IBAN was accepted" >&2; exit 1
fi

say "5. day of action: Victor Ilie arrested, an alias added"
cs record edit "$VICTOR" --field status=arrested >/dev/null
cs record edit "$VICTOR" --field alias="Vic" >/dev/null
cs record show "$VICTOR"

say "6. handling: Victim A is releasable to GB and RO only, so a Dutch node cannot join"
"$BIN" --data-dir "$DEMO/europol" init --name europol --org "Europol" --country NL >/dev/null
EU_CARD=$("$BIN" --data-dir "$DEMO/europol" id --card)
if cs case member add "$CASE" "$EU_CARD" --role contributor; then
  echo "unexpected: handling rule not enforced" >&2; exit 1
fi

say "7. the case"
cs case show "$CASE"
cs record list "$CASE"

say "8. integrity: every stored entry re-verified"
cs log verify

say "9. at rest: no name from the case is readable in the data dir"
if grep -r -a -l -e "Marin Dobre" -e "Victim A" -e "RO41RNCB" "$DEMO/uk-east"; then
  echo "unexpected: plaintext found at rest" >&2; exit 1
fi
echo "grep for \"Marin Dobre\", \"Victim A\", \"RO41RNCB\" in $DEMO/uk-east: nothing found"
echo
echo "demo finished; data dirs are in $DEMO (passphrase: \$CASESYNC_PASSPHRASE above)"
