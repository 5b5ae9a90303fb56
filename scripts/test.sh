#!/usr/bin/env bash
# The whole test suite: type-check (tap only transpiles), the tap tests, then the golden parity runner.
# Ends with one plain line `N passed, M failed` summing the tap tests and the parity cases.
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
echo "== type-check (tsc --noEmit)"
if ! node_modules/.bin/tsc --noEmit -p tsconfig.check.json; then
  echo "type-check failed"
  status=1
fi

echo "== tap"
log=$(mktemp)
node_modules/.bin/tap 2>&1 | tee "$log"
tap_rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total:' "$log" | tail -1)
tap_pass=$(grep -oE 'pass: [0-9]+' <<<"$summary" | grep -oE '[0-9]+' || true)
tap_fail=$(grep -oE 'fail: [0-9]+' <<<"$summary" | grep -oE '[0-9]+' || true)
tap_pass=${tap_pass:-0}; tap_fail=${tap_fail:-0}
if [ "$tap_rc" -ne 0 ] && [ "$tap_fail" -eq 0 ]; then tap_fail=1; fi
[ "$tap_rc" -ne 0 ] && status=1
echo "tap: ${tap_pass} passed, ${tap_fail} failed"

echo "== parity"
plog=$(mktemp)
node --import @tapjs/typescript/import test/parity/run.ts 2>&1 | tee "$plog"
parity_rc=${PIPESTATUS[0]}
pline=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$plog" | tail -1)
par_pass=$(awk '{print $1}' <<<"${pline:-0 passed, 1 failed}")
par_fail=$(awk '{print $3}' <<<"${pline:-0 passed, 1 failed}")
[ "$parity_rc" -ne 0 ] && status=1
rm -f "$log" "$plog"

echo "$((tap_pass + par_pass)) passed, $((tap_fail + par_fail)) failed"
exit $status
