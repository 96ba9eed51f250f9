#!/usr/bin/env bash
# Writes the run folder tests/test_schema.py reads as "a folder written by the previous release":
# a 4-second run of the embedded target, made by the harness at commit $1 (default: b3fbcb1, the
# last release before run.json had a schema version), with no report (records and run.json only).
#   tests/data/previous-release/make.sh [COMMIT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
commit="${1:-b3fbcb1}"
tree="$(mktemp -d)"
trap 'git -C "$repo" worktree remove --force "$tree"' EXIT
git -C "$repo" worktree add -q --detach "$tree" "$commit"
out="$(mktemp -d)"
(cd "$tree" && PYTHONPATH="$tree" python -m bench run -t 4s -u 2 -r 2 --warmup 0 --no-report -q \
    --scenario "$repo/tests/data/one-turn.yaml" --target-profiles "$repo/tests/data/fast-slower-profiles.yaml" \
    --out "$out" --run-id "release-$commit")
rm -rf "$here/run"
cp -r "$out/release-$commit" "$here/run"
rm -f "$here/run/"*.spool "$here/run/"*.log
echo "$commit" > "$here/COMMIT"
ls -la "$here/run"
