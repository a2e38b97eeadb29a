#!/usr/bin/env bash
# The baseline `cargo bench -p telltale-testing --bench verify`
# compares telltale with: the four core checks of `telltale verify` (targets,
# rules, alertmanager, notifications) as an SRE would script them with curl
# and jq, one after another, polling every 200 ms. It reads the same plan.json and does the
# same work, with less care (no retries while the stack settles, no
# ambiguity check, no bounds on what a server sends).
#
#   scripts/bench/verify-baseline.sh BUNDLE_DIR PROMETHEUS_URL ALERTMANAGER_URL
#   CHECKS=targets,rules scripts/bench/verify-baseline.sh BUNDLE_DIR PROMETHEUS_URL -
#
# Exits 0 when every check passes, 1 with the failing check on stderr.
# Needs curl and jq (scripts/tools installs them).
set -euo pipefail

bundle=${1:?usage: verify-baseline.sh BUNDLE_DIR PROMETHEUS_URL ALERTMANAGER_URL}
prom=${2:?PROMETHEUS_URL}
am=${3:?ALERTMANAGER_URL}
plan="$bundle/plan.json"
[ -f "$plan" ] || { echo "no $plan" >&2; exit 2; }
checks=",${CHECKS:-targets,rules,alertmanager,notifications},"
want() { [[ $checks == *",$1,"* ]]; }

# targets: every expected job has its minimum of targets up; a job of a
# system outside the bundle (`requires`) only when Prometheus found it.
want targets && curl -fsS "$prom/api/v1/targets?state=active" | jq -e --slurpfile plan "$plan" '
  .data.activeTargets as $all
  | [ $plan[0].expectations.targets[]
      | . as $want
      | [ $all[] | select(.labels.job == $want.job) ] as $of
      | select($want.requires == null or ($of | length) > 0)
      | select(([ $of[] | select(.health == "up") ] | length) < $want.min)
      | $want.job ]
  | if length == 0 then true else error("targets below their minimum: \(join(", "))") end
' >/dev/null

# rules: every rule group of the bundle is loaded, every rule evaluates.
want rules && curl -fsS "$prom/api/v1/rules" | jq -e --slurpfile plan "$plan" '
  (.data.groups | map({key: .name, value: .}) | from_entries) as $loaded
  | $plan[0].expectations.rule_groups as $want
  | [ $want[] | select($loaded[.] == null) ] as $missing
  | [ $want[] | $loaded[.] // empty | .rules[] | select(.health != "ok") | .name ] as $bad
  | if ($missing | length) > 0 then error("rule groups not loaded: \($missing | join(", "))")
    elif ($bad | length) > 0 then error("rules not ok: \($bad | join(", "))")
    else true end
' >/dev/null

# alertmanager: ready, every tier receiver in the loaded config, cluster settled.
want alertmanager && curl -fsS "$am/-/ready" >/dev/null
want alertmanager && curl -fsS "$am/api/v2/status" | jq -e --slurpfile plan "$plan" '
  [ .config.original | scan("(?m)^- name: (\\S+)$") | .[0] ] as $loaded
  | ($plan[0].expectations.receivers - $loaded) as $missing
  | if ($missing | length) > 0 then error("receivers missing: \($missing | join(", "))")
    elif (.cluster.status | IN("ready", "disabled")) | not then error("cluster \(.cluster.status)")
    else true end
' >/dev/null

if ! want notifications; then
  echo "ok: ${CHECKS}"
  exit 0
fi

# notifications: per receiver with integrations, one synthetic alert (the
# bundle routes it at group_wait 0s), then the receiver's successful
# notification requests polled every 200 ms until each integration sent one.
run="baseline-$(date +%s%N)"
delivered() { # RECEIVER → successful requests so far (receiver_name counters)
  curl -fsS "$am/metrics" | awk -v r="receiver_name=\"$1\"" '
    /^alertmanager_notification_requests_total\{/ && index($0, r) { ok += $NF }
    /^alertmanager_notification_requests_failed_total\{/ && index($0, r) { ok -= $NF }
    END { print ok + 0 }'
}
alert() { # RECEIVER [ENDS_AT]
  jq -nc --arg run "$run" --arg r "$1" --arg ends "${2:-}" '[{
    labels: {alertname: "TelltaleSyntheticNotification", telltale_synthetic: $run, telltale_receiver: $r}
  } + (if $ends == "" then {} else {endsAt: $ends} end)]'
}
receivers=$(jq -r '.alerting.receivers[] | select(.integrations | length > 0) | "\(.receiver) \(.integrations | length)"' "$plan")
while read -r receiver integrations; do
  [ -n "$receiver" ] || continue
  before=$(delivered "$receiver")
  curl -fsS -X POST -H 'Content-Type: application/json' --data "$(alert "$receiver")" "$am/api/v2/alerts" >/dev/null
  for _ in $(seq 1 150); do # 30 s
    sleep 0.2
    [ $(($(delivered "$receiver") - before)) -ge "$integrations" ] && continue 2
  done
  echo "notifications: nothing delivered to $receiver within 30s" >&2
  exit 1
done <<<"$receivers"

# Silence, then resolve, the synthetic alerts (as telltale does), so their
# resolved notifications never reach a later run.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
later=$(date -u -d '+2 minutes' +%Y-%m-%dT%H:%M:%SZ)
curl -fsS -X POST -H 'Content-Type: application/json' "$am/api/v2/silences" --data "$(jq -nc \
  --arg run "$run" --arg now "$now" --arg later "$later" '{
    matchers: [{name: "telltale_synthetic", value: $run, isRegex: false, isEqual: true}],
    startsAt: $now, endsAt: $later, createdBy: "verify-baseline", comment: "baseline run"}')" >/dev/null
while read -r receiver _; do
  [ -n "$receiver" ] || continue
  curl -fsS -X POST -H 'Content-Type: application/json' --data "$(alert "$receiver" "$now")" "$am/api/v2/alerts" >/dev/null
done <<<"$receivers"
echo "ok: targets, rules, alertmanager, notifications"
