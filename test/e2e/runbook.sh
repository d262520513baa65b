#!/usr/bin/env bash
# The runbook, executed (issue 26): docs/runbook.md holds the commands an operator runs in each
# situation, in fenced blocks tagged with an id (```sh runbook:ID), and what they should see after
# them (```text runbook-expect:ID, one line each, … for any text). The scenarios run those blocks
# as they are on the page, so a change to the page changes what the e2e runs (sourced by run.sh's
# steps, like scenarios.sh). test/unit/deploy/runbook.test.ts holds the page and the scenarios to
# each other: every block is run here, every block run here is on the page.

RUNBOOK=${RUNBOOK:-docs/runbook.md}

# runbook_fenced KIND ID: the lines between ```KIND ID and the next ```, exactly one such block.
runbook_fenced() {
  awk -v open="\`\`\`$1 $2" '
    $0 == open { n++; inside = 1; next }
    inside && /^```[[:space:]]*$/ { inside = 0; next }
    inside { print }
    END { if (n != 1) exit 1 }' "$RUNBOOK"
}

# runbook_run ID [NAME=VALUE...]: runs the block runbook:ID in a bash of its own (-euo pipefail: a
# command that fails, or a variable the page uses that the scenario does not give, fails the step),
# from the repository, with the stack's variables and NAME=VALUE in its environment; its output
# (stdout and stderr) goes to $(runbook_log ID). Then every line of
# runbook-expect:ID must be in that output. Returns non-zero naming the block and what failed.
runbook_run() {
  local id=$1 block out line rc=0
  shift
  block=$(runbook_fenced sh "runbook:$id") || { fail "$RUNBOOK has no single \`\`\`sh runbook:$id block"; return 1; }
  out=$(runbook_log "$id")
  log "runbook:$id ($*)"
  env "$@" bash -euo pipefail -c "$block" >"$out" 2>&1 </dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$out" >&2
    fail "the commands of runbook:$id in $RUNBOOK failed (exit $rc); the output is above and in $out"
    return 1
  fi
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    runbook_seen "$line" "$out" || { tail -n 30 "$out" >&2; fail "runbook:$id: the output lacks \"$line\" (runbook-expect:$id in $RUNBOOK); the output is above and in $out"; return 1; }
  done < <(runbook_fenced text "runbook-expect:$id" || true)
}

# The output of the last run of runbook:ID.
runbook_log() { echo "$E2E_STATE/runbook-$1.log"; }

# runbook_seen EXPECTED FILE: some line of FILE holds EXPECTED's pieces between its … in that order.
runbook_seen() {
  awk -v want="$1" '
    BEGIN { n = split(want, part, "…") }
    {
      rest = $0
      for (i = 1; i <= n; i++) {
        at = index(rest, part[i])
        if (at == 0) next
        rest = substr(rest, at + length(part[i]))
      }
      found = 1
      exit
    }
    END { exit found ? 0 : 1 }' "$2"
}
