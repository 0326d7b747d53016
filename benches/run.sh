#!/usr/bin/env bash
# Runs the runtime benchmarks natively in release mode and prints one tab-separated line per
# measurement: RESULT<TAB>otpsim<TAB><workload><TAB><metric><TAB><value>.
#
#   benches/run.sh            # b1-b5, RUNS times each (default 5), each a fresh process
#   benches/run.sh sim        # the simulator's throughput (a release build of the simulation)
#   benches/run.sh hunt       # time to bug: cases to find each planted bug over 20 seeds
#   benches/run.sh b1         # only b1
#   benches/run.sh b6 b6-erlang   # b6, and the same workload on Erlang/OTP (needs `erl`)
#   RUNS=1 OTPSIM_BENCH_DIVIDE=100 benches/run.sh   # a quick smoke run
#   BENCH_PROFILE=dev benches/run.sh b1 sim         # built with the test builds' profile:
#                                                   # it only checks that they run (CI)
#
# A summary with the median of each metric follows on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTDOCFLAGS
runs="${RUNS:-5}"
profile="${BENCH_PROFILE:-bench}"
workloads=("$@")
[ ${#workloads[@]} -eq 0 ] && workloads=(b1 b2 b3 b4 b5)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for w in "${workloads[@]}"; do
  for _ in $(seq "$runs"); do
    if [ "$w" = sim ]; then
      # The simulator's own throughput: a release build of the simulation (madsim).
      cargo bench -q --profile "$profile" --bench simulator | tee -a "$out"
    elif [ "$w" = b6-erlang ]; then
      # The same two-node workload on Erlang/OTP's own distribution, for comparison.
      ebin=$(mktemp -d)
      erlc -o "$ebin" benches/erlang/b6.erl
      erl -sname "b6main$$" -noshell -pa "$ebin" -s b6 main | tee -a "$out"
      rm -rf "$ebin"
    elif [ "$w" = hunt ]; then
      # Cases to find each planted bug: deterministic (generator seeds 0-19), so once is
      # enough; its wall times vary.
      cargo bench -q --profile "$profile" --bench hunt | tee -a "$out"
      break
    else
      cargo bench-native -q --profile "$profile" --bench runtime -- "$w" | tee -a "$out"
    fi
  done
done
echo "median of $runs runs ($(nproc) cores, $(date -u +%Y-%m-%d)):" >&2
cut -f2,3,4 "$out" | sort -u | while IFS=$'\t' read -r system w metric; do
  values=$(awk -F'\t' -v s="$system" -v w="$w" -v m="$metric" '$2 == s && $3 == w && $4 == m { print $5 }' "$out" | sort -g)
  n=$(echo "$values" | wc -l)
  median=$(echo "$values" | awk -v n="$n" '{ v[NR] = $1 } END { if (n % 2) print v[(n + 1) / 2]; else printf "%.1f\n", (v[n / 2] + v[n / 2 + 1]) / 2 }')
  printf '  %s\t%s\t%s\t%s\n' "$system" "$w" "$metric" "$median" >&2
done
