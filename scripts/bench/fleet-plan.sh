#!/usr/bin/env bash
# `telltale plan` of a fleet of N clusters, timed with /usr/bin/time -v: the
# figures of the README's "Benchmark" section ("plan of a fleet").
#
#   scripts/bench/fleet-plan.sh TELLTALE [N...]      # default N: 1 10 25 50
#   RUNS=5 TOOL_CHECK=1 scripts/bench/fleet-plan.sh target/release/telltale 50
#
# The fleet is what a growing team runs: four clusters in five on
# `production` and one on `homelab`, every one remote-writing to a central
# store under its own tenant, every fifth with its own retention. Each N is
# planned RUNS times (default 5) into a fresh directory; the line printed is
# the median wall time and the largest peak RSS. With TOOL_CHECK=1 plan also
# runs promtool and amtool (they must be on PATH: `. "$(scripts/tools --env)"`),
# and GNU time then reports the largest process of the tree.
set -euo pipefail

telltale=${1:?usage: fleet-plan.sh TELLTALE [N...]}
shift
sizes=("${@:-1 10 25 50}")
# shellcheck disable=SC2206
sizes=(${sizes[*]})
runs=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fleet() {
  local n=$1 i profile
  printf 'apiVersion: telltale.dev/v1alpha1\nkind: Fleet\nmetadata: {name: bench}\nspec:\n'
  printf '  defaults:\n    profile: production\n'
  printf '    plugins:\n      remote-write: {values: {url: "https://mimir.example.com/api/v1/push"}}\n'
  printf '  clusters:\n'
  for ((i = 1; i <= n; i++)); do
    profile=production
    ((i % 5 == 0)) && profile=homelab
    printf '    - name: c%03d\n      context: ctx-c%03d\n      profile: %s\n' "$i" "$i" "$profile"
    printf '      plugins: {remote-write: {values: {tenant: c%03d}}}\n' "$i"
    if ((i % 5 == 1)); then
      printf '      set: {kube-prometheus-stack: {prometheus.prometheusSpec.retention: 7d}}\n'
    fi
  done
}

check=(--no-tool-check)
[ "${TOOL_CHECK:-0}" = 1 ] && check=()
printf '%-9s %-12s %-14s %-10s\n' clusters 'median wall' 'peak RSS' files
for n in "${sizes[@]}"; do
  fleet "$n" >"$work/fleet-$n.yaml"
  walls=()
  rss=0
  for ((r = 1; r <= runs; r++)); do
    out="$work/out-$n-$r"
    /usr/bin/time -v "$telltale" plan -q -f "$work/fleet-$n.yaml" --out "$out" "${check[@]}" \
      >/dev/null 2>"$work/time"
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
    # m:ss.cc → seconds
    walls+=("$(awk -v t="$wall" 'BEGIN {n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}')")
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    ((kb > rss)) && rss=$kb
    files=$(find "$out" -type f | wc -l)
    rm -rf "$out"
  done
  median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  printf '%-9s %-12s %-14s %-10s\n' "$n" "${median} s" "$(awk -v k="$rss" 'BEGIN {printf "%.1f MiB", k / 1024}')" "$files"
done
