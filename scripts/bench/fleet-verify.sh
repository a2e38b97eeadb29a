#!/usr/bin/env bash
# `telltale verify` of a fleet of N local stacks, timed with /usr/bin/time -v:
# the figures of the README's "Benchmark" section ("verify of a fleet").
#
#   . "$(scripts/tools --env)"   # real Prometheus 3, Alertmanager, node-exporter
#   scripts/bench/fleet-verify.sh TELLTALE LOCAL_STACK [N...]     # default N: 1 3 5
#   RUNS=5 PARALLEL=4 CHECKS=targets,rules scripts/bench/fleet-verify.sh \
#     target/release/telltale target/debug/telltale-local-stack 5
#
# Each cluster of the fleet is `kind` with Slack, PagerDuty and SMS
# receivers, and runs on its own telltale-local-stack (real Prometheus,
# Alertmanager and node-exporter on 127.0.0.1, the notification sink, the
# fake Loki), reached through the fleet file's `endpoints`. The largest N's
# stacks are started once (and verified once, unmeasured, to let them
# settle), and the first N of them verified: each cluster a
# `telltale verify` process of its own, PARALLEL at a time (default 4, the
# command's default), with CHECKS (default the four core checks and logs).
# Each N is verified RUNS times (default 5); the line printed is the median
# wall time and the largest peak RSS GNU time reports, which is that of the
# largest single process of the tree (the fleet's parent or one cluster's
# verify), not their sum.
set -euo pipefail

telltale=$(realpath "${1:?usage: fleet-verify.sh TELLTALE LOCAL_STACK [N...]}")
stack=$(realpath "${2:?usage: fleet-verify.sh TELLTALE LOCAL_STACK [N...]}")
shift 2
sizes=("${@:-1 3 5}")
# shellcheck disable=SC2206
sizes=(${sizes[*]})
runs=${RUNS:-5}
parallel=${PARALLEL:-4}
checks=${CHECKS:-targets,rules,alertmanager,notifications,logs}
largest=$(printf '%s\n' "${sizes[@]}" | sort -n | tail -1)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The fleet file; with URLs once the stacks answer.
fleet() {
  local n=$1 urls=${2:-} i
  printf 'apiVersion: telltale.dev/v1alpha1\nkind: Fleet\nmetadata: {name: bench}\nspec:\n'
  printf '  defaults:\n    profile: kind\n    alerting:\n      receivers:\n'
  printf '        slack: {channel: "#ops-alerts", webhookUrl: {env: SLACK_WEBHOOK_URL}}\n'
  printf '        pagerduty: {routingKey: {env: PAGERDUTY_ROUTING_KEY}}\n'
  printf '        sms: {to: ["+15550100"], twilio: {accountSid: ACxxxx, from: "+15550199", authToken: {env: TWILIO_AUTH_TOKEN}}}\n'
  printf '  clusters:\n'
  for ((i = 1; i <= n; i++)); do
    printf '    - name: c%d\n      context: ctx-c%d\n' "$i" "$i"
    if [ -n "$urls" ]; then
      jq -r '"      endpoints: {prometheus: \"\(.prometheus)\", alertmanager: \"\(.alertmanager)\", loki: \"\(.loki)\", grafana: \"\(.grafana)\"}"' \
        "$urls/c$i.json"
    fi
  done
}

cd "$work"
# No cluster: every check goes through the endpoints (logs pushes its marker).
export KUBECONFIG="$work/no-kubeconfig"
fleet "$largest" >fleet.yaml
"$telltale" plan -q -f fleet.yaml --out out --no-tool-check >/dev/null
mkdir urls
for ((i = 1; i <= largest; i++)); do
  "$stack" --bundle "out/c$i" --state "$work/state-c$i" >"urls/c$i.json" 2>"stack-c$i.log" &
  pids+=($!)
done
for ((i = 1; i <= largest; i++)); do
  for _ in $(seq 600); do
    [ -s "urls/c$i.json" ] && break
    sleep 0.1
  done
  [ -s "urls/c$i.json" ] || { echo "stack c$i did not start:" >&2; cat "stack-c$i.log" >&2; exit 3; }
done

# One run first, not measured: the stacks' first scrapes and evaluations
# happen there, not in the first measured run.
fleet "$largest" urls >fleet.yaml
"$telltale" verify -q -f fleet.yaml --bundle out --checks "$checks" --parallel "$parallel" \
  --timeout 60s -o json >/dev/null 2>&1 || true

printf '%-9s %-12s %-14s %s\n' clusters 'median wall' 'peak RSS' 'result'
for n in "${sizes[@]}"; do
  fleet "$n" urls >fleet.yaml
  "$telltale" plan -q -f fleet.yaml --out "plan-$n" --no-tool-check >/dev/null
  walls=()
  rss=0
  result=ok
  counts=
  for ((r = 1; r <= runs; r++)); do
    if ! /usr/bin/time -v "$telltale" verify -f fleet.yaml --bundle "plan-$n" --checks "$checks" \
      --parallel "$parallel" --timeout 60s -o json >"verify-$n.json" 2>"time"; then
      result="exit $(jq -r .exit_code "verify-$n.json" 2>/dev/null || echo '?')"
    fi
    # What the last run proved: its checks' outcomes over every cluster.
    [ "$result" = ok ] && counts=$(jq -r '[.clusters[].report.checks[].status] | group_by(.) | map("\(length) \(.[0])") | join(", ")' "verify-$n.json")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' time)
    walls+=("$(awk -v t="$wall" 'BEGIN {n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}')")
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' time)
    ((kb > rss)) && rss=$kb
  done
  median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  [ "$result" = ok ] && result="ok ($counts)"
  printf '%-9s %-12s %-14s %s\n' "$n" "${median} s" "$(awk -v k="$rss" 'BEGIN {printf "%.1f MiB", k / 1024}')" "$result"
done
