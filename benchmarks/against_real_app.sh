#!/bin/bash
# bench run against the Neptun app's own chat handler (tests/data/real-app/standin.mjs) in front of the
# reference target in TGI mode: the figures of #22's note (bare cookie, retired model, 1 in 3 backends
# dying mid-stream, R1 TTFV and decode rate, --persist).
#   APP=<checkout of neptun-software/neptun.web> WORK=<folder with the Node packages, see capture.py> \
#   TOKENIZER=<tokenizer.json splitting as the backend's tokens> benchmarks/against_real_app.sh
# Run from the project's virtualenv (bench, httpx and pandas on the path).
set -u
: "${APP:?a checkout of neptun-software/neptun.web}" "${WORK:?the Node packages folder (capture.py --work)}"
cd "$(dirname "$0")/.." && ROOT=$PWD
cp tests/data/real-app/standin.mjs "$WORK/"
python -m bench target --no-auth --profiles tests/fast-profiles.yaml --port 18777 > /tmp/sc-backend.log 2>&1 &
BK=$!
(cd "$WORK" && STANDIN_SESSION_PASSWORD=$(python3 -c "import secrets;print(secrets.token_hex(24))") STANDIN_WORK="$WORK" exec node standin.mjs "$APP" http://127.0.0.1:18777 18788) > /tmp/sc-standin.log 2>&1 &
SI=$!
sleep 5
COOKIE=$(curl -s -c - http://127.0.0.1:18788/_standin/login | awk '$6=="neptun-session"{print $7}')
echo "cookie: ${#COOKIE} chars, starts ${COOKIE:0:6}"
H=http://127.0.0.1:18788
O=/tmp/sc-runs; rm -rf $O
echo "== 1. bare cookie + stray token"
BENCH_COOKIE="$COOKIE" BENCH_TOKEN=stray-token bench run --host $H --models qwen/Qwen2.5-72B-Instruct --scenario $ROOT/tests/data/one-turn.yaml -u 4 -t 10s --out $O/1 --no-report 2>&1 | tail -4
echo "== 2. retired model"
BENCH_COOKIE="$COOKIE" bench run --host $H --models mistralai/Mistral-7B-Instruct-v0.2 --scenario $ROOT/tests/data/one-turn.yaml -t 5s --out $O/2 2>&1 | tail -2; echo "exit $?"
echo "== 3. 1 in 3 streams fail mid-stream (backend drops), 20 s at default settings"
# exact: every third backend stream (a share of 0.333 drawn at random gives 50 streams 33 % ± 13)
curl -s -X PUT http://127.0.0.1:18777/_bench/faults --data 'drop=1/3:6'; echo
BENCH_COOKIE="$COOKIE" bench run --host $H --models qwen/Qwen2.5-72B-Instruct --scenario $ROOT/tests/data/one-turn.yaml -u 12 -t 20s --out $O/3 2>&1 | grep -E "warning|errors|Qwen" | head -6
curl -s -X PUT http://127.0.0.1:18777/_bench/faults --data ''; echo
echo "== 4. R1"
BENCH_COOKIE="$COOKIE" bench run --host $H --models deepseek-ai/DeepSeek-R1-Distill-Qwen-32B --scenario $ROOT/tests/data/one-turn.yaml -u 4 -t 15s ${TOKENIZER:+--tokenizer $TOKENIZER} --out $O/4 --no-report 2>&1 | tail -3
echo "== 5. --persist --chat-id 5: the load persisted, the preflight not"
BENCH_COOKIE="$COOKIE" bench run --host $H --models qwen/Qwen2.5-72B-Instruct --scenario $ROOT/tests/data/one-turn.yaml -u 2 -t 4s --persist --chat-id 5 --out $O/5 --no-report 2>&1 | tail -2
curl -s http://127.0.0.1:18788/_standin/persisted > /tmp/sc-persisted.json
python -c "
import json,pandas as pd,glob
p=json.load(open('/tmp/sc-persisted.json')); df=pd.read_parquet(glob.glob('/tmp/sc-runs/5/*/requests.parquet')[0])
print('persist calls', len(p), 'urls', sorted({x['url'] for x in p}), 'user msgs', sum(x['body']['actor']=='user' for x in p), 'records', len(df), 'probe persisted', any('Reply with the single word' in x['body']['message'] for x in p))
"
kill $SI $BK
python - <<'PY'
import pandas as pd, glob
for d in sorted(glob.glob('/tmp/sc-runs/*/*/requests.parquet')):
    df = pd.read_parquet(d)
    live = df[df['error'] != 'cancelled']
    print(d.split('/')[3], len(df), 'errors', live['error'].value_counts(dropna=False).to_dict(), 'stall rate %.3f' % (live['error'] == 'stall').mean())
    ok = df[df['error'].isna()]
    if len(ok) and 'ttfv_ms' in ok:
        print('   ttfc p50 %.1f  ttfv p50 %.1f  decode_tps p50 %.1f  tokens %s' % (ok['ttfc_ms'].median(), ok['ttfv_ms'].median(), ok['decode_tps'].median() if 'decode_tps' in ok else float('nan'), ok['token_source'].iloc[0]))
PY
