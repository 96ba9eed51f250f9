#!/usr/bin/env bash
# The latency regression gate as a CI job runs it (the README's GitHub Actions and GitLab CI
# examples call this script; tests/test_ci.py runs it end to end).
#
#   1. run the fixed scenario with a fixed seed against the build's server (HOST) or, without HOST,
#      the embedded reference target; SLO verdicts as JUnit XML;
#   2. the first time, that run becomes the baseline and the job passes;
#   3. otherwise gate it against the baseline: exit 1 on a regression, verdicts as JUnit XML and
#      compare.md for a pull-request comment;
#   4. draw the latency history of every run kept under OUT.
#
# Environment: HOST, BASELINE (default baselines/main), OUT (default results/ci), DURATION (2m),
# SCENARIO (default), SEED (1), USERS (12), TOLERANCE_FILE (default: the built-in tolerances),
# BUILD_ID (the run's id; default: a time stamp), and credentials as for bench run (BENCH_TOKEN, ...).
set -euo pipefail

OUT=${OUT:-results/ci}
BASELINE=${BASELINE:-baselines/main}
RUN_ID=${BUILD_ID:-build-$(date -u +%Y%m%d-%H%M%S)}
args=(-t "${DURATION:-2m}" --scenario "${SCENARIO:-default}" --seed "${SEED:-1}" -u "${USERS:-12}" -r "${USERS:-12}"
      --out "$OUT" --run-id "$RUN_ID" -q --junit "$OUT/$RUN_ID/slo-junit.xml")
[ -n "${HOST:-}" ] && args+=(--host "$HOST")
[ -n "${TARGET_PROFILES:-}" ] && args+=(--target-profiles "$TARGET_PROFILES")

bench run "${args[@]}"
run_dir="$OUT/$RUN_ID"

if [ ! -f "$BASELINE/requests.parquet" ]; then
  mkdir -p "$(dirname "$BASELINE")"
  cp -r "$run_dir" "$BASELINE"
  echo "no baseline at $BASELINE yet: this run ($RUN_ID) is the baseline now"
  exit 0
fi

gate=(--junit "$run_dir/gate-junit.xml" --out "$run_dir/compare")
[ -n "${TOLERANCE_FILE:-}" ] && gate+=(--tolerance-file "$TOLERANCE_FILE")
status=0
bench compare "$BASELINE" "$run_dir" "${gate[@]}" || status=$?
bench history "$OUT" --out "$OUT/history" >/dev/null || true
exit "$status"
