#!/usr/bin/env bash
# The latency regression gate as a CI job runs it (the README's GitHub Actions and GitLab CI
# examples call this script; tests/test_ci.py runs it end to end).
#
#   1. the first time (no baseline yet): run the fixed scenario with a fixed seed for BASELINE_DURATION
#      against the build's server (HOST) or, without HOST, the embedded reference target; that run
#      becomes the baseline and the job passes. `bench plan $BASELINE` then says whether it is long
#      enough to decide each tolerance;
#   2. otherwise run the candidate with --until-decided: it loads until the gate against the
#      baseline decides every row (checked every DECIDE_EVERY seconds, alpha spent per look), at
#      most MAX_DURATION; with UNTIL_DECIDED=0 it runs for DURATION, by default the baseline's plan
#      (`bench plan --seconds`, at most MAX_DURATION);
#   3. gate it: exit 0 every row equivalent or improved, 1 a regression, 3 undecided (nothing
#      regressed, but the runs could not tell; UNDECIDED=pass|fail maps it to 0 or 1); verdicts as
#      JUnit XML and compare.md for a pull-request comment;
#   4. draw the latency history of every run kept under OUT.
#
# Environment: HOST, BASELINE (default baselines/main), OUT (default results/ci), BASELINE_DURATION
# (5m), MAX_DURATION (20m), DECIDE_EVERY (20), UNTIL_DECIDED (1), DURATION, SCENARIO (default),
# SEED (1), USERS (12), TOLERANCE_FILE (default: the built-in tolerances), UNDECIDED (exit3),
# BUILD_ID (the run's id and the build under test in run.json; default: a time stamp for the id, and
# $GITHUB_SHA / $CI_COMMIT_SHA for the build, so `bench history --order build` orders by the app's commits), CACHE_SALT (run: each run's conversations start with a
# nonce of their own, so a candidate never reads the prefix cache its baseline warmed), NOISE_FROM (a folder
# of repeat runs of the baseline build: the gate widens its intervals by their run-to-run spread), and credentials as for bench run (BENCH_COOKIE, ...).
set -euo pipefail

OUT=${OUT:-results/ci}
BASELINE=${BASELINE:-baselines/main}
RUN_ID=${BUILD_ID:-build-$(date -u +%Y%m%d-%H%M%S)}
MAX_DURATION=${MAX_DURATION:-20m}
args=(--scenario "${SCENARIO:-default}" --seed "${SEED:-1}" -u "${USERS:-12}" -r "${USERS:-12}"
      --cache-salt "${CACHE_SALT:-run}" --out "$OUT" --run-id "$RUN_ID" -q --junit "$OUT/$RUN_ID/slo-junit.xml")
[ -n "${HOST:-}" ] && args+=(--host "$HOST")
[ -n "${BUILD_ID:-}" ] && args+=(--build-id "$BUILD_ID")
[ -n "${TARGET_PROFILES:-}" ] && args+=(--target-profiles "$TARGET_PROFILES")
tol=()
[ -n "${TOLERANCE_FILE:-}" ] && tol+=(--tolerance-file "$TOLERANCE_FILE")

if [ ! -f "$BASELINE/requests.parquet" ]; then
  bench run "${args[@]}" -t "${BASELINE_DURATION:-5m}"
  mkdir -p "$(dirname "$BASELINE")"
  cp -r "$OUT/$RUN_ID" "$BASELINE"
  echo "no baseline at $BASELINE yet: this run ($RUN_ID) is the baseline now"
  bench plan "$BASELINE" "${tol[@]}" --out "$BASELINE/plan" | tail -n 3 || true
  exit 0
fi

if [ "${UNTIL_DECIDED:-1}" != 0 ]; then
  gtol=()
  [ -n "${TOLERANCE_FILE:-}" ] && gtol+=(--gate-tolerance-file "$TOLERANCE_FILE")
  bench run "${args[@]}" --until-decided "$BASELINE" --max-duration "$MAX_DURATION" --decide-every "${DECIDE_EVERY:-20}" "${gtol[@]}"
else
  duration=${DURATION:-$(bench plan "$BASELINE" "${tol[@]}" --seconds 2>/dev/null || echo 120)s}
  bench run "${args[@]}" -t "$duration"
fi
run_dir="$OUT/$RUN_ID"

gate=(--junit "$run_dir/gate-junit.xml" --out "$run_dir/compare" --undecided "${UNDECIDED:-exit3}" "${tol[@]}")
# NOISE_FROM: a folder of repeat runs of the baseline build (3+): intervals widened by their run-to-run spread
[ -n "${NOISE_FROM:-}" ] && gate+=(--noise-from "$NOISE_FROM")
status=0
bench compare "$BASELINE" "$run_dir" "${gate[@]}" || status=$?
bench history "$OUT" --out "$OUT/history" >/dev/null || true
exit "$status"
